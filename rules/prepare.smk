# Data preparation (docs/architecture.md, "Files"): every scene on the grid of
# the reference date (its inputs merged, cloud, shadow and defects masked) with
# its validity raster, the outlines rasterized on it, one spatial split for all
# dates, and per date the tile stores with train-only band statistics.
from glaciermap.data.prepare import (
    mask_settings,
    reference_date,
    regions_settings,
    scene_input_files,
    scene_settings,
)

REFERENCE_DATE = reference_date(config["data"])


rule prepare_scene:
    input:
        lambda wc: scene_input_files(config["data"], wc.date),
    output:
        scene="results/scenes/{date}.tif",
        validity="results/validity/{date}.tif",
    params:
        date="{date}",
        settings=lambda wc: canonical(scene_settings(config["data"], wc.date)),
    log:
        "logs/prepare/scene_{date}.log",
    benchmark:
        "benchmarks/results/prepare/scene_{date}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_scene.py"


rule prepare_mask:
    input:
        scene="results/scenes/{date}.tif",
        outlines=config["data"]["outlines"]["file"],
    output:
        "results/masks/{date}.tif",
    params:
        date="{date}",
        settings=lambda wc: canonical(mask_settings(config["data"], wc.date)),
    log:
        "logs/prepare/mask_{date}.log",
    benchmark:
        "benchmarks/results/prepare/mask_{date}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_mask.py"


rule prepare_regions:
    input:
        scene=f"results/scenes/{REFERENCE_DATE}.tif",
        outlines=config["data"]["outlines"]["file"],
    output:
        "results/regions.tif",
    params:
        settings=canonical(regions_settings(config["data"])),
    log:
        "logs/prepare/regions.log",
    benchmark:
        "benchmarks/results/prepare/regions.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_regions.py"


rule prepare_tiles:
    input:
        scene="results/scenes/{date}.tif",
        mask="results/masks/{date}.tif",
        regions="results/regions.tif",
    output:
        train="results/tiles/{date}/train.npz",
        val="results/tiles/{date}/val.npz",
        test="results/tiles/{date}/test.npz",
        stats="results/tiles/{date}/stats.json",
    params:
        tiles=canonical(config["data"]["tiles"]),
    log:
        "logs/prepare/tiles_{date}.log",
    benchmark:
        "benchmarks/results/prepare/tiles_{date}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_tiles.py"
