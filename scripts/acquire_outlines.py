"""Snakemake adapter: GLIMS outlines of the area (rule acquire_outlines)."""

from glaciermap.acquire.glims import acquire_outlines
from glaciermap.acquire.settings import acquire_settings
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
acquire_outlines(acquire_settings(snakemake.config), snakemake.output[0])
