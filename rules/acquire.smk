# Download the inputs: the scenes of data.scenes.{date}.file for every label in
# acquire.dates (STAC, Sentinel-2 L2A COGs read by HTTP range requests; the items
# of one day that see the most of the area, merged) with their merged SCL at
# data.scenes.{date}.validity.scl, data.outlines.file (GLIMS) and, when data.dem
# names a STAC collection (e.g. cop-dem-glo-30), the DEM at data.dem.file over the
# area. Active only when acquire.enabled is true; the
# outputs are written atomically, so a rerun after a failed download starts
# clean. They run on the host Snakemake runs on (localrule): cluster compute
# nodes often have no internet access.
from glaciermap.acquire.settings import (
    dem_params,
    dem_target,
    outline_params,
    scene_bands,
    scene_params,
    scene_targets,
    scl_invalid_classes,
    scl_targets,
)

if config.get("acquire", {}).get("enabled", False):

    rule acquire_outlines:
        localrule: True
        output:
            config["data"]["outlines"]["file"],
        params:
            settings=outline_params(config),
        log:
            logs("acquire/outlines.log"),
        benchmark:
            benchmarks("acquire/outlines.tsv")
        conda:
            CONDA_ENV
        script:
            "../scripts/acquire_outlines.py"

    # One rule per date: each label writes to the path its scene entry names, and
    # the merged SCL to its validity.scl when it has one.
    _scl_files = scl_targets(config)
    for _date, _scene_file in scene_targets(config).items():

        rule:
            name:
                f"acquire_scene_{_date}"
            localrule: True
            input:
                # An area given by glacier ids is the envelope of their outlines.
                outlines=(
                    config["data"]["outlines"]["file"]
                    if config["acquire"]["aoi"].get("glaciers")
                    else []
                ),
            output:
                scene=_scene_file,
                **({"scl": _scl_files[_date]} if _date in _scl_files else {}),
            params:
                date=_date,
                settings=scene_params(config, _date),
                bands=scene_bands(config),
                invalid_classes=scl_invalid_classes(config, _date),
            log:
                logs(f"acquire/scene_{_date}.log"),
            benchmark:
                benchmarks(f"acquire/scene_{_date}.tsv")
            conda:
                CONDA_ENV
            script:
                "../scripts/acquire_scene.py"

    if dem_target(config) is not None:

        rule acquire_dem:
            localrule: True
            input:
                outlines=(
                    config["data"]["outlines"]["file"]
                    if config["acquire"]["aoi"].get("glaciers")
                    else []
                ),
            output:
                dem_target(config),
            params:
                settings=dem_params(config),
            log:
                logs("acquire/dem.log"),
            benchmark:
                benchmarks("acquire/dem.tsv")
            conda:
                CONDA_ENV
            script:
                "../scripts/acquire_dem.py"
