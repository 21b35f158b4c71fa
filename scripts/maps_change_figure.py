"""Snakemake adapter: the area-change figure of the report (rule maps_change_figure)."""

from glaciermap.areas.area_tables import run_change_figure
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    run_change_figure(
        snakemake.input.scene,
        snakemake.input.masks,
        snakemake.input.outlines,
        snakemake.params.dates,
        snakemake.output[0],
        run=snakemake.params.run,
        validity=snakemake.input.validity,
        uncertainty=snakemake.input.uncertainty,
        uncertainty_threshold=snakemake.params.uncertainty_threshold,
    )
