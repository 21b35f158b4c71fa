"""Snakemake adapter: one date's scene on the reference grid (rule prepare_scene)."""

from glaciermap.data.prepare import prepare_scene
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_scene(snakemake.params.settings, snakemake.wildcards.date, snakemake.output[0])
