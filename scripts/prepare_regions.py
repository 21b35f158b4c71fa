"""Snakemake adapter: the train / validation / test split raster (rule prepare_regions)."""

from glaciermap.data.prepare import prepare_regions
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_regions(snakemake.params.settings, snakemake.input.scene, snakemake.output[0])
