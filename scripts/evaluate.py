"""Snakemake adapter: score one predicted mask (rules evaluate, baseline_evaluate,
evaluate_ensemble)."""

from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    evaluate_prediction(
        snakemake.input.prediction,
        snakemake.input.reference,
        snakemake.input.regions,
        snakemake.output[0],
        run=snakemake.params.run,
        date=snakemake.wildcards.date,
        members=snakemake.params.get("members"),
    )
