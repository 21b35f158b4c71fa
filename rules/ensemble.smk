# Seed ensembles of the final configurations (docs/architecture.md, "Files"): the
# seeds' best.pt predict each scene together (read once), giving the mean
# probability, its mask and the seeds' standard deviation; the mask is scored
# like a run's.


rule maps_ensemble:
    input:
        checkpoints=ensemble_checkpoints,
        scene=scene_file(),
    output:
        probability=map_file(ENSEMBLE, "{date}", "probability.tif"),
        uncertainty=map_file(ENSEMBLE, "{date}", "uncertainty.tif"),
        mask=map_file(ENSEMBLE, "{date}", "mask.tif"),
    params:
        inference=prediction_params(config["inference"]),
        device=config["training"]["device"],
    threads: config["training"]["threads"]
    log:
        logs(f"maps/{ENSEMBLE}/{{date}}/predict.log"),
    benchmark:
        benchmarks(f"maps/{ENSEMBLE}/{{date}}/predict.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_ensemble.py"


rule evaluate_ensemble:
    input:
        prediction=map_file(ENSEMBLE, "{date}", "mask.tif"),
        reference=reference_mask(),
        regions=regions_file(),
    output:
        eval_file(ENSEMBLE, "{date}"),
    params:
        run=ENSEMBLE,
        members=len(FINAL_SEEDS),
    log:
        logs(f"evaluate/{ENSEMBLE}/{{date}}.log"),
    benchmark:
        benchmarks(f"evaluate/{ENSEMBLE}/{{date}}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate.py"


# `snakemake --cores 2 ensembles`: every final configuration's ensemble, scored on
# every date.
rule ensembles:
    localrule: True
    input:
        lambda wc: ensemble_eval_files(),


rule maps_ensemble_outlines:
    input:
        mask=map_file(ENSEMBLE, "{date}", "mask.tif"),
    output:
        map_file(ENSEMBLE, "{date}", "outlines.gpkg"),
    params:
        min_area_km2=config["inference"]["min_area_km2"],
        run=ENSEMBLE,
        acquired=lambda wc: config["data"]["scenes"][wc.date]["acquired"],
    log:
        logs(f"maps/{ENSEMBLE}/{{date}}/outlines.log"),
    benchmark:
        benchmarks(f"maps/{ENSEMBLE}/{{date}}/outlines.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_outlines.py"
