"""Snakemake adapter: one date's scene on the reference grid (rule prepare_scene)."""

from glaciermap.data.prepare import prepare_scene
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
prepare_scene(snakemake.params.settings, snakemake.wildcards.date, snakemake.output[0])
