"""Snakemake adapter: the Sentinel-2 L2A scene of one date (rules acquire_scene_{date})."""

from glaciermap.acquire.settings import AcquireSettings
from glaciermap.acquire.stac import download_scene
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    download_scene(
        AcquireSettings.from_config(snakemake.params.settings),
        snakemake.params.date,
        snakemake.output.scene,
        outlines=snakemake.input.get("outlines") or None,
        scl_output=snakemake.output.get("scl"),
        invalid_classes=snakemake.params.invalid_classes,
        bands=snakemake.params.bands,
    )
