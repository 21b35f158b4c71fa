# Scores of predicted masks against the reference masks, and the threshold
# baseline (fitted on the training tiles) that every table compares with.


rule evaluate:
    input:
        prediction=map_file(RUN, "{date}", "mask.tif"),
        reference=reference_mask(),
        regions=regions_file(),
    output:
        eval_file(RUN, "{date}"),
    params:
        run=RUN,
    log:
        logs(f"evaluate/{RUN}/{{date}}.log"),
    benchmark:
        benchmarks(f"evaluate/{RUN}/{{date}}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate.py"


rule baseline_fit:
    input:
        train=lambda wc: tile_files(wc.dates, "train"),
        val=lambda wc: tile_files(wc.dates, "val"),
    output:
        baseline_rules(),
    params:
        channels=config["data"]["channels"],
    log:
        logs("baseline/{dates}/fit.log"),
    benchmark:
        benchmarks("baseline/{dates}/fit.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/baseline_fit.py"


rule baseline_predict:
    input:
        rules=baseline_rules(),
        scene=scene_file(),
    output:
        map_file("baseline/{dates}", "{date}", "mask.tif"),
    log:
        logs("baseline/{dates}/{date}/predict.log"),
    benchmark:
        benchmarks("baseline/{dates}/{date}/predict.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/baseline_predict.py"


rule baseline_evaluate:
    input:
        prediction=map_file("baseline/{dates}", "{date}", "mask.tif"),
        reference=reference_mask(),
        regions=regions_file(),
    output:
        eval_file("baseline/{dates}", "{date}"),
    params:
        run="baseline/{dates}",
    log:
        logs("evaluate/baseline/{dates}/{date}.log"),
    benchmark:
        benchmarks("evaluate/baseline/{dates}/{date}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate.py"
