"""Snakemake adapter: the QGIS style next to one map layer (rule maps_style)."""

from glaciermap.io.map_layers import write_style
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    write_style(snakemake.params.layer, snakemake.output[0])
