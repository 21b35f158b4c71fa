# Seed ensembles of the final configurations (docs/architecture.md, "Files"): the
# seeds' best.pt predict each scene together (read once), giving the mean
# probability, its mask and the seeds' standard deviation; the mask is scored
# like a run's.


rule maps_ensemble:
    input:
        checkpoints=ensemble_checkpoints,
        scene="results/scenes/{date}.tif",
    output:
        probability=f"results/maps/{ENSEMBLE}/{{date}}/probability.tif",
        uncertainty=f"results/maps/{ENSEMBLE}/{{date}}/uncertainty.tif",
        mask=f"results/maps/{ENSEMBLE}/{{date}}/mask.tif",
    params:
        inference=prediction_params(config["inference"]),
        device=config["training"]["device"],
    threads: config["training"]["threads"]
    log:
        f"logs/maps/{ENSEMBLE}/{{date}}/predict.log",
    benchmark:
        f"benchmarks/results/maps/{ENSEMBLE}/{{date}}/predict.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_ensemble.py"


rule evaluate_ensemble:
    input:
        prediction=f"results/maps/{ENSEMBLE}/{{date}}/mask.tif",
        reference="results/masks/{date}.tif",
        regions="results/regions.tif",
    output:
        f"results/eval/{ENSEMBLE}/{{date}}.json",
    params:
        run=ENSEMBLE,
        members=len(FINAL_SEEDS),
    log:
        f"logs/evaluate/{ENSEMBLE}/{{date}}.log",
    benchmark:
        f"benchmarks/results/evaluate/{ENSEMBLE}/{{date}}.tsv"
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
        mask=f"results/maps/{ENSEMBLE}/{{date}}/mask.tif",
    output:
        f"results/maps/{ENSEMBLE}/{{date}}/outlines.gpkg",
    params:
        min_area_km2=config["inference"]["min_area_km2"],
        run=ENSEMBLE,
        acquired=lambda wc: config["data"]["scenes"][wc.date]["acquired"],
    log:
        f"logs/maps/{ENSEMBLE}/{{date}}/outlines.log",
    benchmark:
        f"benchmarks/results/maps/{ENSEMBLE}/{{date}}/outlines.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/maps_outlines.py"
