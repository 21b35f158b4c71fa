"""Snakemake adapter: glacier area per date and its change (rule maps_areas)."""

from glaciermap.areas.area_tables import reference_glaciers, write_area_tables
from glaciermap.reporting.html_tables import write_csv_html
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    write_area_tables(
        snakemake.params.maps,
        snakemake.params.reference,
        snakemake.params.date_order,
        snakemake.output.areas,
        snakemake.output.change,
        validity=snakemake.params.validity,
        regions_path=snakemake.input.regions,
        glaciers=reference_glaciers(
            snakemake.params.outlines, snakemake.params.acquired, snakemake.input.regions
        ),
        block_size=snakemake.params.block_size,
        uncertainty_threshold=snakemake.params.uncertainty_threshold,
    )
    write_csv_html(snakemake.output.areas, snakemake.output.areas_html)
    write_csv_html(snakemake.output.change, snakemake.output.change_html)
