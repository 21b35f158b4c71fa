"""Snakemake adapter: glacier area per date and its change (rule maps_areas)."""

import itertools

from glaciermap.inference.commands import reference_glaciers, write_area_tables
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
pairs = list(itertools.product(snakemake.params.runs, snakemake.params.dates))
write_area_tables(
    [(run, date, mask) for (run, date), mask in zip(pairs, snakemake.input.masks, strict=True)],
    dict(zip(snakemake.params.dates, snakemake.input.reference, strict=True)),
    snakemake.params.date_order,
    snakemake.output.areas,
    snakemake.output.change,
    regions_path=snakemake.input.regions,
    glaciers=reference_glaciers(
        snakemake.params.outlines, snakemake.params.acquired, snakemake.input.regions
    ),
    outlines=[
        (run, date, path) for (run, date), path in zip(pairs, snakemake.input.outlines, strict=True)
    ],
    block_size=snakemake.params.block_size,
)
