"""Snakemake adapter: per-glacier area and change tables (rule maps_glaciers)."""

from glaciermap.areas.glacier_tables import GlacierSettings, glacier_grid, write_glacier_tables
from glaciermap.reporting.html_tables import write_csv_html
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    settings = GlacierSettings(
        snakemake.params.max_distance_m, snakemake.params.min_observed_fraction
    )
    write_glacier_tables(
        snakemake.params.maps,
        glacier_grid(
            snakemake.params.outlines,
            snakemake.params.reference_acquired,
            snakemake.input.regions,
            settings.max_distance_m,
        ),
        snakemake.params.validity,
        snakemake.params.acquired,
        snakemake.params.date_order,
        settings,
        snakemake.output.glaciers,
        snakemake.output.change,
    )
    write_csv_html(snakemake.output.glaciers, snakemake.output.glaciers_html)
    write_csv_html(snakemake.output.change, snakemake.output.change_html)
