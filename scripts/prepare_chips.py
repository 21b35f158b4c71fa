"""Snakemake adapter: the tile stores and inventory of one chip dataset (rule prepare_chips)."""

from glaciermap.data.chips import prepare_chips
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    prepare_chips(
        snakemake.params.dataset,
        snakemake.params.label,
        snakemake.input.images,
        snakemake.params.tiles,
        snakemake.output,
        channels=snakemake.params.channels,
        dem=snakemake.params.dem,
        fold=snakemake.params.get("fold"),
    )
