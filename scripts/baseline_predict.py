"""Snakemake adapter: apply the threshold baseline to one scene."""

from glaciermap.evaluation.baseline import predict_baseline
from glaciermap.utils.logs import setup_logging

setup_logging(snakemake.log[0])
predict_baseline(snakemake.input.rules, snakemake.input.scene, snakemake.output[0])
