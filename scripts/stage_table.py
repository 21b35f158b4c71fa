"""Snakemake adapter: write one stage's selection table (Table 1, Table 2, augmentation)."""

from glaciermap.reporting import tables
from glaciermap.utils.logs import setup_logging

BUILDERS = {
    "table1_models": tables.build_table1,
    "table2_hparams": tables.build_table2,
    "table_augmentation": tables.build_table_augmentation,
}

setup_logging(snakemake.log[0])
BUILDERS[snakemake.rule](snakemake.input.metrics, snakemake.input.baseline, snakemake.output.csv)
