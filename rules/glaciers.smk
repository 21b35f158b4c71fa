# Per-glacier products (README "Per glacier"): every final run, seed ensemble and
# baseline map split among the reference glaciers (glaciermap.areas.glaciers),
# its per-glacier outlines, and the tables of areas and change per glacier.


rule maps_glacier_outlines:
    input:
        mask=map_file("{map}", "{date}", "mask.tif"),
        layers=lambda wc: [
            glacier_map_record(wc.map, wc.date)[layer]
            for layer in ("probability", "uncertainty")
            if layer in glacier_map_record(wc.map, wc.date)
        ],
        members=lambda wc: glacier_map_record(wc.map, wc.date).get("member_masks", []),
        validity=validity_file(),
        regions=regions_file(),
        glacier_outlines=config["data"]["outlines"]["file"],
    output:
        map_file("{map}", "{date}", "glaciers.gpkg"),
    params:
        map=lambda wc: glacier_map_record(wc.map, wc.date),
        outlines=config["data"]["outlines"],
        reference_acquired=config["data"]["scenes"][REFERENCE_DATE]["acquired"],
        acquired=lambda wc: config["data"]["scenes"][wc.date]["acquired"],
        max_distance_m=config["inference"]["glaciers"]["max_distance_m"],
        outline_smoothing=config["inference"]["glaciers"]["outline_smoothing"],
        min_area_km2=config["inference"]["min_area_km2"],
    log:
        logs("maps/{map}/{date}/glaciers.log"),
    benchmark:
        benchmarks("maps/{map}/{date}/glaciers.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_glacier_outlines.py"


rule maps_glaciers:
    localrule: True
    input:
        masks=lambda wc: [r["mask"] for r in glacier_maps()],
        layers=lambda wc: [
            r[layer] for r in glacier_maps() for layer in ("probability", "uncertainty") if layer in r
        ],
        validity=[validity_file(date) for date in DATES],
        regions=regions_file(),
        glacier_outlines=config["data"]["outlines"]["file"],
    output:
        glaciers=results("maps/glaciers.csv"),
        change=results("maps/glacier_change.csv"),
        glaciers_html=report(
            results("maps/glaciers.html"), caption="../report/glaciers.rst", category="Maps"
        ),
        change_html=report(
            results("maps/glacier_change.html"),
            caption="../report/glacier_change.rst",
            category="Maps",
        ),
    params:
        maps=lambda wc: glacier_maps(),
        validity={date: validity_file(date) for date in DATES},
        date_order=DATES_BY_ACQUISITION,
        outlines=config["data"]["outlines"],
        reference_acquired=config["data"]["scenes"][REFERENCE_DATE]["acquired"],
        acquired={date: config["data"]["scenes"][date]["acquired"] for date in DATES},
        max_distance_m=config["inference"]["glaciers"]["max_distance_m"],
        min_observed_fraction=config["inference"]["glaciers"]["min_observed_fraction"],
    log:
        logs("maps/glaciers.log"),
    benchmark:
        benchmarks("maps/glaciers.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_glaciers.py"


# `snakemake --cores 2 glaciers`: the per-glacier tables and chart, every map's outlines
# and styles.
rule glaciers:
    localrule: True
    input:
        results("maps/glaciers.csv"),
        results("maps/glacier_change.csv"),
        results("figures/glacier_change.png"),
        lambda wc: glacier_outline_files(),


# The QGIS style QGIS loads with each map layer (glaciermap.io.map_layers).
rule maps_style:
    localrule: True
    input:
        map_file("{map}", "{date}", "{layer}.tif"),
    output:
        map_file("{map}", "{date}", "{layer}.qml"),
    wildcard_constraints:
        layer="mask|probability|uncertainty",
    params:
        layer="{layer}",
    log:
        logs("maps/{map}/{date}/{layer}_style.log"),
    benchmark:
        benchmarks("maps/{map}/{date}/{layer}_style.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_style.py"


rule maps_glacier_figure:
    localrule: True
    input:
        glaciers=results("maps/glaciers.csv"),
        change=results("maps/glacier_change.csv"),
        # the masks of the run it draws: ties the choice of run to the stage winners
        masks=lambda wc: change_figure_maps()["masks"],
    output:
        report(
            results("figures/glacier_change.png"),
            caption="../report/glacier_change_figure.rst",
            category="Maps",
        ),
    params:
        run=lambda wc: change_figure_maps()["run"],
    log:
        logs("maps/glacier_change_figure.log"),
    benchmark:
        benchmarks("maps/glacier_change_figure.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_glacier_figure.py"
