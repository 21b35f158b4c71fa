"""Snakemake adapter: one date's scene and validity on the reference grid (rule prepare_scene)."""

from glaciermap.data.prepare import prepare_scene
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_scene(
        snakemake.params.settings,
        snakemake.params.date,
        snakemake.output.scene,
        snakemake.output.validity,
    )
