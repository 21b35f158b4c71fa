# Chip datasets (docs/chips.md): the tile stores of each chip set, and the scores
# of every final run, seed ensemble and threshold baseline on the external test
# sets (split: test), each chip predicted whole.


rule prepare_chips:
    input:
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
    output:
        train="results/chips/{chips}/train.npz",
        val="results/chips/{chips}/val.npz",
        test="results/chips/{chips}/test.npz",
        stats="results/chips/{chips}/stats.json",
        inventory="results/chips/{chips}/chips.csv",
    params:
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        tiles=canonical(config["data"]["tiles"]),
    log:
        "logs/chips/{chips}/prepare.log",
    benchmark:
        "benchmarks/results/chips/{chips}/prepare.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_chips.py"


rule evaluate_chips:
    input:
        checkpoints=[f"results/runs/{RUN}/best.pt"],
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
    output:
        json=f"results/eval/{RUN}/chips/{{chips}}.json",
        csv=f"results/eval/{RUN}/chips/{{chips}}.csv",
    params:
        run=RUN,
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        threshold=config["inference"]["threshold"],
        device=config["training"]["device"],
    threads: config["training"]["threads"]
    log:
        f"logs/evaluate/{RUN}/chips/{{chips}}.log",
    benchmark:
        f"benchmarks/results/evaluate/{RUN}/chips/{{chips}}.tsv"
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
    output:
        json=f"results/eval/{ENSEMBLE}/chips/{{chips}}.json",
        csv=f"results/eval/{ENSEMBLE}/chips/{{chips}}.csv",
    params:
        run=ENSEMBLE,
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
        threshold=config["inference"]["threshold"],
        device=config["training"]["device"],
    threads: config["training"]["threads"]
    log:
        f"logs/evaluate/{ENSEMBLE}/chips/{{chips}}.log",
    benchmark:
        f"benchmarks/results/evaluate/{ENSEMBLE}/chips/{{chips}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_chips.py"


rule evaluate_chips_baseline:
    input:
        rules="results/baseline/{dates}/rules.json",
        images=lambda wc: chip_inputs(wc.chips)["images"],
        masks=lambda wc: chip_inputs(wc.chips)["masks"],
        outlines=lambda wc: chip_inputs(wc.chips)["outlines"],
    output:
        json="results/eval/baseline/{dates}/chips/{chips}.json",
        csv="results/eval/baseline/{dates}/chips/{chips}.csv",
    params:
        run="baseline/{dates}",
        label="{chips}",
        dataset=lambda wc: canonical(config["data"]["chips"][wc.chips]),
    log:
        "logs/evaluate/baseline/{dates}/chips/{chips}.log",
    benchmark:
        "benchmarks/results/evaluate/baseline/{dates}/chips/{chips}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_chips_baseline.py"
