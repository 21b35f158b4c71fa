# Table 3 (final models on the test region of every date and on every external
# chip test set, with the threshold baseline), the figures, and what `snakemake --report report.html` bundles.


rule table3:
    localrule: True
    input:
        evals=lambda wc: eval_files(final_runs()) + ensemble_eval_files(),
        baseline=baseline_eval_files(),
        external=lambda wc: external_eval_files(),
    output:
        csv=results("table3.csv"),
        md=results("table3.md"),
        html=report(results("table3.html"), caption="../report/table3.rst", category="Tables"),
        long=results("table3_long.csv"),
        long_md=results("table3_long.md"),
        long_html=report(
            results("table3_long.html"), caption="../report/table3_long.rst", category="Tables"
        ),
    log:
        logs("report/table3.log"),
    benchmark:
        benchmarks("report/table3.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/table3.py"


rule figure2_model_selection:
    localrule: True
    input:
        lambda wc: metrics_files(selection_runs()),
    output:
        report(
            results("figures/figure2_model_selection.png"),
            caption="../report/figure2.rst",
            category="Figures",
        ),
    params:
        group_by="model",
        title="Figure 2: model selection, training history per architecture",
    log:
        logs("report/figure2_model_selection.log"),
    benchmark:
        benchmarks("report/figure2_model_selection.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/training_figure.py"


rule figure3_augmentation:
    localrule: True
    input:
        lambda wc: metrics_files(augmentation_runs()),
    output:
        report(
            results("figures/figure3_augmentation.png"),
            caption="../report/figure3.rst",
            category="Figures",
        ),
    params:
        group_by="aug",
        title="Figure 3: with and without augmentation",
    log:
        logs("report/figure3_augmentation.log"),
    benchmark:
        benchmarks("report/figure3_augmentation.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/training_figure.py"


rule figure4_final_history:
    localrule: True
    input:
        lambda wc: metrics_files(history_runs()),
    output:
        report(
            results("figures/figure4_final_history.png"),
            caption="../report/figure4.rst",
            category="Figures",
        ),
    params:
        group_by="dates",
        title="Figure 4: training history of the final model",
    log:
        logs("report/figure4_final_history.log"),
    benchmark:
        benchmarks("report/figure4_final_history.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/training_figure.py"


rule overlay_figure:
    localrule: True
    input:
        scene=scene_file(),
        probability=lambda wc: map_file(overlay_run(), wc.date, "probability.tif"),
        mask=lambda wc: map_file(overlay_run(), wc.date, "mask.tif"),
        reference=reference_mask(),
        regions=regions_file(),
        validity=validity_file(),
    output:
        report(
            results("figures/overlay_{region}_{date}.png"),
            caption="../report/overlay.rst",
            category="Figures",
            subcategory="Overlays",
        ),
    params:
        run=lambda wc: overlay_run(),
        title=lambda wc: f"{wc.region} region, {wc.date}: {overlay_run()}",
    log:
        logs("report/overlay_{region}_{date}.log"),
    benchmark:
        benchmarks("report/overlay_{region}_{date}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/overlay_figure.py"
