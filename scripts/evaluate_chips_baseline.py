"""Snakemake adapter: the threshold baseline scored on an external chip test set
(rule evaluate_chips_baseline)."""

from glaciermap.evaluation.chips import evaluate_chips_baseline
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    evaluate_chips_baseline(
        snakemake.input.rules,
        snakemake.params.dataset,
        snakemake.params.label,
        snakemake.input.images,
        snakemake.output.json,
        snakemake.output.csv,
        run=snakemake.params.run,
        dem=snakemake.params.dem,
    )
