"""Snakemake adapter: one map's per-glacier outlines (rule maps_glacier_outlines)."""

from glaciermap.areas.glacier_tables import glacier_grid, write_glacier_outlines
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    record = snakemake.params.map
    write_glacier_outlines(
        record,
        glacier_grid(
            snakemake.params.outlines,
            snakemake.params.reference_acquired,
            snakemake.input.regions,
            snakemake.params.max_distance_m,
        ),
        snakemake.input.validity,
        snakemake.params.acquired,
        snakemake.output[0],
        members=[
            {"run": run, "mask": mask}
            for run, mask in zip(record.get("members", []), snakemake.input.members, strict=True)
        ],
        min_area_km2=snakemake.params.min_area_km2,
        smoothing=snakemake.params.outline_smoothing,
    )
