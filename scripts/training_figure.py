"""Snakemake adapter: loss and F1 per epoch of some runs (Figures 2, 3 and 4)."""

from glaciermap.reporting.figures import figure_training_curves
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    figure_training_curves(
        snakemake.input,
        snakemake.output[0],
        group_by=snakemake.params.group_by,
        title=snakemake.params.title,
    )
