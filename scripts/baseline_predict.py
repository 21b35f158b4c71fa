"""Snakemake adapter: apply the threshold baseline to one scene."""

from glaciermap.evaluation.baseline import predict_baseline
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    predict_baseline(snakemake.input.rules, snakemake.input.scene, snakemake.output[0])
