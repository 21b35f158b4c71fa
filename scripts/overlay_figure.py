"""Snakemake adapter: prediction over the RGB image of one region and date (Figures 5-8)."""

from glaciermap.reporting.figures import figure_overlay
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    figure_overlay(
        snakemake.input.scene,
        snakemake.input.probability,
        snakemake.input.reference,
        snakemake.input.regions,
        snakemake.output[0],
        region=snakemake.wildcards.region,
        mask_tif=snakemake.input.mask,
        title=snakemake.params.title,
        validity_tif=snakemake.input.validity,
    )
