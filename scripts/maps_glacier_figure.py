"""Snakemake adapter: the per-glacier change chart (rule maps_glacier_figure)."""

from glaciermap.areas.glacier_figure import glacier_chart
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    glacier_chart(
        snakemake.input.glaciers, snakemake.input.change, snakemake.params.run, snakemake.output[0]
    )
