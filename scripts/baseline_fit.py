"""Snakemake adapter: fit the threshold baseline on the training tiles of some dates."""

from glaciermap.evaluation.baseline import fit_baseline
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    fit_baseline(
        snakemake.input.train,
        snakemake.output[0],
        val_tiles=snakemake.input.val,
        channels=snakemake.params.channels,
    )
