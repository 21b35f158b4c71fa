"""Snakemake adapter: write Table 3 and its long form (rule table3)."""

from glaciermap.reporting.tables import build_table3
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    build_table3(
        snakemake.input.evals,
        snakemake.input.baseline,
        snakemake.output.csv,
        snakemake.output.long,
        external_eval_files=snakemake.input.external,
    )
