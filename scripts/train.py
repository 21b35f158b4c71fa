"""Snakemake adapter: train one run of the matrix (rule train)."""

import dataclasses
from pathlib import Path

from glaciermap.training.run import train_run
from glaciermap.training.settings import RunSettings
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
w = snakemake.wildcards
settings = RunSettings.from_config(snakemake.config, w.model, w.hparams, w.dates, w.aug, w.seed)
train_run(
    dataclasses.replace(settings, threads=snakemake.threads),  # what the scheduler granted
    snakemake.input.train,
    snakemake.input.val,
    snakemake.input.stats,
    Path(snakemake.output.metrics).parent,
)
