"""Snakemake adapter: glacier outlines rasterized on the scene grid (rule prepare_mask)."""

from glaciermap.data.prepare import prepare_mask
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_mask(
        snakemake.params.settings,
        snakemake.params.date,
        snakemake.input.scene,
        snakemake.output[0],
    )
