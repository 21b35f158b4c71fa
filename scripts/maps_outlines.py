"""Snakemake adapter: glacier outlines of one predicted mask (rule maps_outlines)."""

from glaciermap.inference.vectorize import vectorize_mask_file
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    vectorize_mask_file(
        snakemake.input.mask,
        snakemake.output[0],
        min_area_km2=snakemake.params.min_area_km2,
        date=snakemake.params.acquired,  # the acquisition date (ISO), not the label
        model=snakemake.wildcards.model,
        run=snakemake.params.run,
    )
