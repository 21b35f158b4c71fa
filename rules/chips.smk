# Chip datasets (docs/chips.md): the tile stores of each chip set, and the scores
# of every final run, seed ensemble and threshold baseline on the external test
# sets (split: test), each chip predicted whole.


rule prepare_chips:
    input:
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
        dem=DEM_FILES,
    output:
        train=tile_file("chips", "{chips}", "train.npz"),
        val=tile_file("chips", "{chips}", "val.npz"),
        test=tile_file("chips", "{chips}", "test.npz"),
        stats=tile_file("chips", "{chips}", "stats.json"),
        inventory=tile_file("chips", "{chips}", "chips.csv"),
    params:
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        tiles=canonical(config["data"]["tiles"]),
        channels=CHANNELS,
        dem=DEM,
    log:
        logs("chips/{chips}/prepare.log"),
    benchmark:
        benchmarks("chips/{chips}/prepare.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_chips.py"


# One fold of a split: kfold dataset: its test chips, the others' train and val.
rule prepare_chip_fold:
    input:
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
        dem=DEM_FILES,
    output:
        train=tile_file("chips", "{chips}", "fold{fold}/train.npz"),
        val=tile_file("chips", "{chips}", "fold{fold}/val.npz"),
        test=tile_file("chips", "{chips}", "fold{fold}/test.npz"),
        stats=tile_file("chips", "{chips}", "fold{fold}/stats.json"),
        inventory=tile_file("chips", "{chips}", "fold{fold}/chips.csv"),
    params:
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        tiles=canonical(config["data"]["tiles"]),
        channels=CHANNELS,
        dem=DEM,
        fold=lambda wc: int(wc.fold),
    log:
        logs("chips/{chips}/fold{fold}/prepare.log"),
    benchmark:
        benchmarks("chips/{chips}/fold{fold}/prepare.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_chips.py"


# A run scored on an external test set, or (a fold run on its kfold dataset) on the
# fold's own test chips: its out-of-fold predictions.
rule evaluate_chips:
    input:
        checkpoints=[run_file(RUN, "best.pt")],
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
        dem=DEM_FILES,
        fold_inventory=fold_inventory,
    output:
        json=chip_eval_file(RUN, "{chips}", "json"),
        csv=chip_eval_file(RUN, "{chips}", "csv"),
    params:
        run=RUN,
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        threshold=config["inference"]["threshold"],
        device=config["training"]["device"],
        dem=DEM,
        folds=lambda wc: CHIPS[wc.chips].folds if wc.chips in KFOLD_CHIPS else None,
    threads: config["training"]["threads"]
    log:
        logs(f"evaluate/{RUN}/chips/{{chips}}.log"),
    benchmark:
        benchmarks(f"evaluate/{RUN}/chips/{{chips}}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_chips.py"


rule evaluate_chips_ensemble:
    input:
        checkpoints=ensemble_checkpoints,
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
        dem=DEM_FILES,
    output:
        json=chip_eval_file(ENSEMBLE, "{chips}", "json"),
        csv=chip_eval_file(ENSEMBLE, "{chips}", "csv"),
    params:
        run=ENSEMBLE,
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        threshold=config["inference"]["threshold"],
        device=config["training"]["device"],
        dem=DEM,
    threads: config["training"]["threads"]
    log:
        logs(f"evaluate/{ENSEMBLE}/chips/{{chips}}.log"),
    benchmark:
        benchmarks(f"evaluate/{ENSEMBLE}/chips/{{chips}}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_chips.py"


rule evaluate_chips_baseline:
    input:
        rules=baseline_rules(),
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
        dem=DEM_FILES,
    output:
        json=chip_eval_file("baseline/{dates}", "{chips}", "json"),
        csv=chip_eval_file("baseline/{dates}", "{chips}", "csv"),
    params:
        run="baseline/{dates}",
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        dem=DEM,
    log:
        logs("evaluate/baseline/{dates}/chips/{chips}.log"),
    benchmark:
        benchmarks("evaluate/baseline/{dates}/chips/{chips}.tsv")
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_chips_baseline.py"
