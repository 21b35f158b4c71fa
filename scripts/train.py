"""Snakemake adapter: train one run of the matrix (rule train)."""

from pathlib import Path

from glaciermap.training.run import train_run
from glaciermap.training.settings import RunSettings
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    train_run(
        RunSettings.from_params(snakemake.params.settings, threads=snakemake.threads),
        snakemake.input.train,
        snakemake.input.val,
        snakemake.input.stats,
        Path(snakemake.output.metrics).parent,
    )
