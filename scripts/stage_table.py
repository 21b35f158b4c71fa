"""Snakemake adapter: one stage's selection table (rules table1_models, table2_hparams,
table_augmentation; ``params.table`` says which)."""

from glaciermap.reporting.tables import build_selection_table
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    build_selection_table(
        snakemake.params.table,
        snakemake.input.metrics,
        snakemake.input.baseline,
        snakemake.output.csv,
    )
