# Whole-scene maps of the final runs (docs/architecture.md, "Files"): blended
# sliding-window probability and mask COGs, vector outlines, the table of glacier
# area per date where it was observed (results/validity/{date}.tif) with its
# change over the area observed on both dates, and the change figure of the report.

# Change is taken between dates in acquisition order; the figure compares the
# first and the last date (the only one, for a one-date config).
DATES_BY_ACQUISITION = sorted(DATES, key=lambda d: config["data"]["scenes"][d]["acquired"])
CHANGE_DATES = list(dict.fromkeys([DATES_BY_ACQUISITION[0], DATES_BY_ACQUISITION[-1]]))


rule maps_predict:
    input:
        checkpoint=run_file(RUN, "best.pt"),
        scene=scene_file(),
    output:
        probability=map_file(RUN, "{date}", "probability.tif"),
        mask=map_file(RUN, "{date}", "mask.tif"),
    params:
        inference=prediction_params(config["inference"]),
        device=config["training"]["device"],
    threads: config["training"]["threads"]
    log:
        logs(f"maps/{RUN}/{{date}}/predict.log"),
    benchmark:
        benchmarks(f"maps/{RUN}/{{date}}/predict.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_predict.py"


rule maps_outlines:
    input:
        mask=map_file(RUN, "{date}", "mask.tif"),
    output:
        map_file(RUN, "{date}", "outlines.gpkg"),
    params:
        min_area_km2=config["inference"]["min_area_km2"],
        run=RUN,
        acquired=lambda wc: config["data"]["scenes"][wc.date]["acquired"],
    log:
        logs(f"maps/{RUN}/{{date}}/outlines.log"),
    benchmark:
        benchmarks(f"maps/{RUN}/{{date}}/outlines.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_outlines.py"


rule maps_areas:
    localrule: True
    input:
        masks=lambda wc: [record["mask"] for record in area_maps()],
        outlines=lambda wc: [r["outlines"] for r in area_maps() if "outlines" in r],
        uncertainty=lambda wc: [r["uncertainty"] for r in area_maps() if "uncertainty" in r],
        reference=[reference_mask(date) for date in DATES],
        validity=[validity_file(date) for date in DATES],
        regions=regions_file(),
        glacier_outlines=config["data"]["outlines"]["file"],
    output:
        areas=results("maps/areas.csv"),
        change=results("maps/area_change.csv"),
        areas_html=report(results("maps/areas.html"), caption="../report/areas.rst", category="Maps"),
        change_html=report(
            results("maps/area_change.html"), caption="../report/area_change.rst", category="Maps"
        ),
    params:
        maps=lambda wc: area_maps(),
        reference={date: reference_mask(date) for date in DATES},
        validity={date: validity_file(date) for date in DATES},
        date_order=DATES_BY_ACQUISITION,
        outlines=config["data"]["outlines"],
        acquired=config["data"]["scenes"][REFERENCE_DATE]["acquired"],
        block_size=config["inference"]["block_size"],
        uncertainty_threshold=config["inference"]["uncertainty_threshold"],
    log:
        logs("maps/areas.log"),
    benchmark:
        benchmarks("maps/areas.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_areas.py"


rule maps_change_figure:
    localrule: True
    input:
        scene=scene_file(CHANGE_DATES[-1]),
        masks=lambda wc: change_figure_maps()["masks"],
        outlines=lambda wc: change_figure_maps()["outlines"],
        uncertainty=lambda wc: change_figure_maps()["uncertainty"],
        validity=[validity_file(date) for date in CHANGE_DATES],
    output:
        report(
            results("figures/area_change.png"),
            caption="../report/area_change_figure.rst",
            category="Maps",
        ),
    params:
        dates=CHANGE_DATES,
        run=lambda wc: change_figure_maps()["run"],
        uncertainty_threshold=config["inference"]["uncertainty_threshold"],
    log:
        logs("maps/area_change_figure.log"),
    benchmark:
        benchmarks("maps/area_change_figure.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_change_figure.py"
