"""Snakemake adapter: the tile stores and train statistics of one date (rule prepare_tiles)."""

from pathlib import Path

from glaciermap.data.prepare import prepare_tiles
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_tiles(
        snakemake.input.scene,
        snakemake.input.mask,
        snakemake.input.regions,
        snakemake.params.tiles,
        Path(snakemake.output.stats).parent,
    )
