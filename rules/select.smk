# Stage tables. Each is a checkpoint: once it is written, the input functions
# of the next stage read the stage's winner from the runs' metrics
# (rules/common.smk), so the winners come from results, not from the config.


checkpoint table1_models:
    localrule: True
    input:
        metrics=lambda wc: metrics_files(selection_runs()),
        baseline=baseline_rules(ALL_DATES),
    output:
        csv=results("table1_models.csv"),
        md=results("table1_models.md"),
        html=report(
            results("table1_models.html"),
            caption="../report/table1_models.rst",
            category="Tables",
        ),
    params:
        table="models",
    log:
        logs("select/table1_models.log"),
    benchmark:
        benchmarks("select/table1_models.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/stage_table.py"


checkpoint table2_hparams:
    localrule: True
    input:
        metrics=lambda wc: metrics_files(grid_runs()),
        baseline=baseline_rules(ALL_DATES),
    output:
        csv=results("table2_hparams.csv"),
        md=results("table2_hparams.md"),
        html=report(
            results("table2_hparams.html"),
            caption="../report/table2_hparams.rst",
            category="Tables",
        ),
    params:
        table="hparams",
    log:
        logs("select/table2_hparams.log"),
    benchmark:
        benchmarks("select/table2_hparams.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/stage_table.py"


checkpoint table_augmentation:
    localrule: True
    input:
        metrics=lambda wc: metrics_files(augmentation_runs()),
        baseline=baseline_rules(ALL_DATES),
    output:
        csv=results("table_augmentation.csv"),
        md=results("table_augmentation.md"),
        html=report(
            results("table_augmentation.html"),
            caption="../report/table_augmentation.rst",
            category="Tables",
        ),
    params:
        table="augmentation",
    log:
        logs("select/table_augmentation.log"),
    benchmark:
        benchmarks("select/table_augmentation.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/stage_table.py"
