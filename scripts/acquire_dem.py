"""Snakemake adapter: the DEM of data.dem.collection over the area (rule acquire_dem)."""

from glaciermap.acquire.settings import AcquireSettings
from glaciermap.acquire.stac import download_dem
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    settings = snakemake.params.settings
    download_dem(
        AcquireSettings.from_config(settings["acquire"]),
        settings["dem"],
        snakemake.output[0],
        outlines=snakemake.input.get("outlines") or None,
    )
