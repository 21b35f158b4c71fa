# One training run of the matrix. Every stage asks for runs by path; a run
# shared by two stages is trained once. last.pt is not an output: Snakemake
# would delete it when a job fails, and it is what a retried job resumes from.


rule train:
    input:
        train=lambda wc: tile_files(wc.dates, "train", run_fold(wc)),
        val=lambda wc: tile_files(wc.dates, "val", run_fold(wc)),
        stats=lambda wc: stats_files(wc.dates, run_fold(wc)),
    output:
        metrics=run_file(RUN, "metrics.json"),
        weights=run_file(RUN, "best.pt"),
    params:
        settings=training_params,
    log:
        logs(f"train/{RUN}.log"),
    benchmark:
        benchmarks(f"train/{RUN}.tsv")
    threads: config["training"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=train_runtime_minutes,
    conda:
        CONDA_ENV
    script:
        "../scripts/train.py"
