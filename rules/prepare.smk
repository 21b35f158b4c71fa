# Data preparation (docs/architecture.md, "Files"): every scene on the grid of
# the reference date (its inputs merged, cloud, shadow and defects masked) with
# its validity raster, the outlines rasterized on it, one spatial split for all
# dates, and per date the tile stores with train-only band statistics.
from glaciermap.data.prepare import (
    mask_settings,
    reference_date,
    regions_settings,
    scene_input_files,
    scene_tiles,
    scene_settings,
)

REFERENCE_DATE = reference_date(config["data"])


rule prepare_scene:
    input:
        lambda wc: scene_input_files(config["data"], wc.date),
    output:
        scene=scene_file(),
        validity=validity_file(),
    params:
        date="{date}",
        settings=lambda wc: canonical(scene_settings(config["data"], wc.date)),
    log:
        logs("prepare/scene_{date}.log"),
    benchmark:
        benchmarks("prepare/scene_{date}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_scene.py"


rule prepare_mask:
    input:
        scene=scene_file(),
        outlines=config["data"]["outlines"]["file"],
    output:
        reference_mask(),
    params:
        date="{date}",
        settings=lambda wc: canonical(mask_settings(config["data"], wc.date)),
    log:
        logs("prepare/mask_{date}.log"),
    benchmark:
        benchmarks("prepare/mask_{date}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_mask.py"


rule prepare_regions:
    input:
        scene=scene_file(REFERENCE_DATE),
        outlines=config["data"]["outlines"]["file"],
    output:
        regions_file(),
    params:
        settings=canonical(regions_settings(config["data"])),
    log:
        logs("prepare/regions.log"),
    benchmark:
        benchmarks("prepare/regions.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_regions.py"


rule prepare_tiles:
    input:
        scene=scene_file(),
        mask=reference_mask(),
        regions=regions_file(),
    output:
        train=tile_file("tiles", "{date}", "train.npz"),
        val=tile_file("tiles", "{date}", "val.npz"),
        test=tile_file("tiles", "{date}", "test.npz"),
        stats=tile_file("tiles", "{date}", "stats.json"),
    params:
        tiles=lambda wc: canonical(scene_tiles(config["data"], wc.date)),
    log:
        logs("prepare/tiles_{date}.log"),
    benchmark:
        benchmarks("prepare/tiles_{date}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_tiles.py"
