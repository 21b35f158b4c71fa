"""Snakemake adapter: the train / validation / test split raster (rule prepare_regions)."""

from glaciermap.data.prepare import prepare_regions
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_regions(snakemake.params.settings, snakemake.input.scene, snakemake.output[0])
