"""Snakemake adapter: a run or a seed ensemble scored on an external chip test set
(rules evaluate_chips, evaluate_chips_ensemble)."""

import torch

from glaciermap.evaluation.chips import evaluate_chips_checkpoints
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    evaluate_chips_checkpoints(
        snakemake.input.checkpoints,
        snakemake.params.dataset,
        snakemake.params.label,
        snakemake.input.images,
        snakemake.output.json,
        snakemake.output.csv,
        run=snakemake.params.run,
        threshold=snakemake.params.threshold,
        device=snakemake.params.device,
        dem=snakemake.params.dem,
        fold_inventory=next(iter(snakemake.input.get("fold_inventory", [])), None),
        folds=snakemake.params.get("folds"),
    )
