"""Snakemake adapter: the Sentinel-2 L2A scene of one date (rules acquire_scene_{date})."""

from glaciermap.acquire.settings import acquire_settings
from glaciermap.acquire.stac import download_scene
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
download_scene(
    acquire_settings(snakemake.config),
    snakemake.params.date,
    snakemake.output[0],
    outlines=snakemake.input.get("outlines") or None,
)
