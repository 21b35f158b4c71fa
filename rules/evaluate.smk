# Scores of predicted masks against the reference masks, and the threshold
# baseline (fitted on the training tiles) that every table compares with.


rule evaluate:
    input:
        prediction=f"results/maps/{RUN}/{{date}}/mask.tif",
        reference="results/masks/{date}.tif",
        regions="results/regions.tif",
    output:
        f"results/eval/{RUN}/{{date}}.json",
    params:
        run=RUN,
    log:
        f"logs/evaluate/{RUN}/{{date}}.log",
    benchmark:
        f"benchmarks/results/evaluate/{RUN}/{{date}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate.py"


rule baseline_fit:
    input:
        train=lambda wc: tile_files(wc.dates, "train"),
        val=lambda wc: tile_files(wc.dates, "val"),
    output:
        "results/baseline/{dates}/rules.json",
    log:
        "logs/baseline/{dates}/fit.log",
    benchmark:
        "benchmarks/results/baseline/{dates}/fit.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/baseline_fit.py"


rule baseline_predict:
    input:
        rules="results/baseline/{dates}/rules.json",
        scene="results/scenes/{date}.tif",
    output:
        "results/maps/baseline/{dates}/{date}/mask.tif",
    log:
        "logs/baseline/{dates}/{date}/predict.log",
    benchmark:
        "benchmarks/results/baseline/{dates}/{date}/predict.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/baseline_predict.py"


rule baseline_evaluate:
    input:
        prediction="results/maps/baseline/{dates}/{date}/mask.tif",
        reference="results/masks/{date}.tif",
        regions="results/regions.tif",
    output:
        "results/eval/baseline/{dates}/{date}.json",
    params:
        run="baseline/{dates}",
    log:
        "logs/evaluate/baseline/{dates}/{date}.log",
    benchmark:
        "benchmarks/results/evaluate/baseline/{dates}/{date}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate.py"
