"""Snakemake adapter: GLIMS outlines of the area (rule acquire_outlines)."""

from glaciermap.acquire.glims import acquire_outlines
from glaciermap.acquire.settings import AcquireSettings
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    acquire_outlines(AcquireSettings.from_config(snakemake.params.settings), snakemake.output[0])
