"""End to end: the workflow on the tiny Everest config plus two generated chip sets,
one that trains (split by ground into train and validation) and one external test
set, with two seeds, one model and pinned stage winners; and the same chip sets
alone (tests/configs/chips_only.yaml, no scene), every stage run on them.

Checks that the chips' tiles are trained on, that Table 3 gets the external test
set's column for the runs, their seed ensemble and the baseline, that
``glaciermap evaluate-chips`` gives the workflow's counts for the same chips and
checkpoints, and that a rerun does nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from chipdata import SCALE, ChipSpec, chip_arrays, dataset_block, site, write_chip

from glaciermap.cli import main
from glaciermap.data.tilestore import TileSet

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
CHIPS_ONLY = ROOT / "tests" / "configs" / "chips_only.yaml"
HP = {"dropout": 0.4, "activation": "softmax", "pooling": "mean"}
HP_SLUG = "dropout0.4-softmax-mean"


# 4 sites x 2 years, the 2021 chip in another CRS for half of them
ALPS = [
    ChipSpec(f"site{i}_{year}0801", *site(i), crs=crs, seed=10 * i + year)
    for i in range(4)
    for year, crs in ((2019, "EPSG:32632"), (2021, ("EPSG:32632", "EPSG:3035")[i % 2]))
]


def write_chip_sets(workdir: Path) -> None:
    """chips/alps (4 sites x 2 years) and chips/karakoram (3 chips, one small) in ``workdir``."""
    for spec in ALPS:
        write_chip(workdir / "chips/alps", spec)
    for spec in (
        ChipSpec("k1", 76.50, 35.80, crs="EPSG:32643", seed=101),
        ChipSpec("k2", 76.55, 35.80, crs="EPSG:4326", shape=(40, 56), seed=102),
        ChipSpec("k3_small", 76.60, 35.80, crs="EPSG:32643", shape=(20, 24), seed=103),
    ):
        write_chip(workdir / "chips/karakoram", spec)


def chip_config(workdir: Path, train_on: list[str], seeds: list[int]) -> dict:
    """tiny.yaml with one model, pinned winners, and the chip sets alps and karakoram."""
    write_chip_sets(workdir)
    config = yaml.safe_load(TINY.read_text())
    config["seeds"] = seeds
    config["model_selection"].update(models=["pspnet"], winner="pspnet", hparams=HP)
    config["hparam_grid"]["winner"] = HP
    config["augmentation"].update(compare=["noaug"], winner="noaug")
    config["final"]["train_on"] = train_on
    # Each scene and chip scaled by its own robust range: the chips' ranges in the
    # tile store train, and prediction measures each chip's again.
    config["training"]["normalization"] = "scene"
    alps = dataset_block(Path("chips/alps"), split="train_val")
    alps["validation"] = {"fraction": 0.3, "block_m": 500}
    alps["acquired"] = {"pattern": r"_(\d{8})$", "format": "%Y%m%d"}
    config["data"]["chips"] = {
        "alps": alps,
        "karakoram": dataset_block(Path("chips/karakoram"), split="test"),
    }
    return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, snakemake) -> Path:
    path = tmp_path_factory.mktemp("chips_e2e")
    snakemake(path, "results/table3.csv", config=chip_config(path, ["all"], [1, 2]), cores=2)
    return path


def run_path(seed: int) -> str:
    return f"pspnet/{HP_SLUG}/oct2000+alps/noaug/seed{seed}"


@pytest.mark.slow
def test_runs_train_on_the_scene_and_the_training_chips(workdir):
    results = workdir / "results"
    metrics = json.loads((results / f"runs/{run_path(1)}/metrics.json").read_text())
    chips = {s: len(TileSet.load(results / f"chips/alps/{s}.npz")) for s in ("train", "val")}
    scene = {s: len(TileSet.load(results / f"tiles/oct2000/{s}.npz")) for s in ("train", "val")}
    assert chips["train"] > 0 and chips["val"] > 0
    assert metrics["n_train_tiles"] == scene["train"] + chips["train"]
    assert metrics["n_val_tiles"] == scene["val"] + chips["val"]
    inventory = pd.read_csv(results / "chips/alps/chips.csv")
    sites = inventory["image"].map(lambda p: Path(p).stem.split("_")[0])
    assert (inventory.groupby(sites)["split"].nunique() == 1).all()


@pytest.mark.slow
def test_table3_has_a_column_for_the_external_test_set(workdir):
    table = pd.read_csv(workdir / "results/table3.csv")
    assert {"f1_oct2000_mean", "f1_karakoram_mean", "f1_karakoram_std"} <= set(table.columns)
    assert list(zip(table["baseline"], table["ensemble"], strict=True)) == [
        (False, False), (False, True), (True, False)
    ]  # fmt: skip
    assert table["f1_karakoram_mean"].between(0, 1).all()
    seeds = [
        json.loads((workdir / f"results/eval/{run_path(s)}/chips/karakoram.json").read_text())
        for s in (1, 2)
    ]
    f1s = [s["pooled"]["f1"] for s in seeds]
    assert table.iloc[0]["f1_karakoram_mean"] == pytest.approx(np.mean(f1s))
    assert table.iloc[0]["f1_karakoram_std"] == pytest.approx(np.std(f1s, ddof=1))
    assert "F1 karakoram external" in (workdir / "results/table3.md").read_text()
    # Every chip is scored on its own labelled pixels, the small one too.
    per_chip = pd.read_csv(workdir / f"results/eval/{run_path(1)}/chips/karakoram.csv")
    assert (per_chip["status"] == "scored").all() and len(per_chip) == 3
    small = per_chip[per_chip["image"].str.contains("k3_small")].iloc[0]
    assert 0 < small["n_pixels"] < 20 * 24


@pytest.mark.slow
@pytest.mark.parametrize("members", [["seed1"], ["seed1", "seed2"]])
def test_the_command_gives_the_workflow_counts(workdir, members, tmp_path, monkeypatch):
    monkeypatch.chdir(workdir)
    checkpoints = [f"results/runs/{run_path(int(m[-1]))}/best.pt" for m in members]
    out = tmp_path / "scores.json"
    args = ["evaluate-chips", "--images", "chips/karakoram/images/*.tif",
            "--masks", "chips/karakoram/masks/{stem}.tif", "--bands", "blue=1,green=2,red=3,nir=4",
            "--scale", str(SCALE), "--nodata", "0", "--ignore", "255", "--device", "cpu",
            "--out", str(tmp_path / "scores.csv"), "--json", str(out)]  # fmt: skip
    for checkpoint in checkpoints:
        args += ["--checkpoint", checkpoint]
    assert main(args) == 0
    label = run_path(1) if len(members) == 1 else f"ensemble/pspnet/{HP_SLUG}/oct2000+alps/noaug"
    workflow = json.loads((workdir / f"results/eval/{label}/chips/karakoram.json").read_text())
    command = json.loads(out.read_text())
    assert command["pooled"] == workflow["pooled"]
    assert command["n_chips"] == workflow["n_chips"] == 3


@pytest.mark.slow
def test_rerun_does_nothing(workdir, snakemake):
    run = snakemake(workdir, "-n", "results/table3.csv", config=workdir / "config.yaml")
    assert "Nothing to be done" in run.output


@pytest.fixture(scope="module")
def chips_only(tmp_path_factory, snakemake) -> Path:
    """tests/configs/chips_only.yaml run to its default target (every stage, no scene)."""
    path = tmp_path_factory.mktemp("chips_only")
    write_chip_sets(path)
    snakemake(path, config=CHIPS_ONLY, cores=2)
    return path


@pytest.mark.slow
def test_a_chip_only_config_runs_every_stage_on_the_chips(chips_only):
    results = chips_only / "results"
    for stage, rows in (("table1_models", 1), ("table2_hparams", 1), ("table_augmentation", 2)):
        stage_table = pd.read_csv(results / f"{stage}.csv")
        assert (~stage_table["baseline"]).sum() == rows and stage_table["baseline"].sum() == 1
    final = f"pspnet/{HP_SLUG}/alps"
    aug = pd.read_csv(results / "table_augmentation.csv")
    assert set(aug["aug"].dropna()) == {"noaug", "aug-geometric"}
    winner = json.loads((results / f"runs/{final}/noaug/seed1/metrics.json").read_text())
    assert winner["n_train_tiles"] == len(TileSet.load(results / "chips/alps/train.npz"))
    assert winner["n_val_tiles"] == len(TileSet.load(results / "chips/alps/val.npz")) > 0
    # Table 3: the test chips only, for the final seeds, their ensemble and the baseline.
    table = pd.read_csv(results / "table3.csv")
    assert [c for c in table.columns if c.startswith("f1_")] == [
        "f1_karakoram_mean", "f1_karakoram_std"
    ]  # fmt: skip
    assert list(zip(table["trained_on"], table["baseline"], table["ensemble"], strict=True)) == [
        ("alps", False, False), ("alps", False, True), ("alps", True, False)
    ]  # fmt: skip
    assert table.loc[0, "n_seeds"] == 2 and table["f1_karakoram_mean"].between(0, 1).all()
    long = pd.read_csv(results / "table3_long.csv")
    assert set(long["region"]) == {"external"}
    # What needs a scene is not made.
    assert not any((results / name).exists() for name in ("scenes", "masks", "maps", "tiles"))
    figures = {path.name for path in (results / "figures").iterdir()}
    assert figures == {
        "figure2_model_selection.png", "figure3_augmentation.png", "figure4_final_history.png"
    }  # fmt: skip


@pytest.mark.slow
def test_a_chip_only_report_says_what_it_skipped(chips_only, snakemake):
    snakemake(chips_only, "--report", "report.html", config=CHIPS_ONLY)
    report = (chips_only / "report.html").read_text()
    assert "chip-only config" in report and "area-change figure" in report


@pytest.fixture(scope="module")
def kfold(tmp_path_factory, snakemake) -> Path:
    """chips_only.yaml with alps cross-validated over 2 folds, one seed, Table 1 kept
    and the later stages pinned: 2 training runs (one per fold)."""
    path = tmp_path_factory.mktemp("kfold")
    write_chip_sets(path)
    config = yaml.safe_load(CHIPS_ONLY.read_text())
    config["data"]["chips"]["alps"].update(split="kfold", folds=2)
    config["hparam_grid"]["winner"] = HP
    config["augmentation"].update(compare=["noaug"], winner="noaug")
    config["final"]["seeds"] = None
    snakemake(path, "results/table3.csv", config=config, cores=2)
    return path


def fold_run(fold: int) -> str:
    return f"pspnet/{HP_SLUG}/alps/noaug/seed1-fold{fold}"


@pytest.mark.slow
def test_kfold_tests_every_labelled_pixel_once_and_pools_the_folds(kfold):
    results = kfold / "results"
    inventories = [pd.read_csv(results / f"chips/alps/fold{k}/chips.csv") for k in (0, 1)]
    tested = [set(inv.loc[inv["split"] == "test", "image"]) for inv in inventories]
    assert tested[0] and tested[1] and not tested[0] & tested[1]
    assert tested[0] | tested[1] == set(inventories[0]["image"])
    sites = inventories[0]["image"].map(lambda p: Path(p).stem.split("_")[0])
    assert (inventories[0].groupby(sites)["fold"].nunique() == 1).all()  # two years, one fold
    # Each fold's model never trained on its test chips.
    for k, inv in enumerate(inventories):
        assert set(inv.loc[inv["fold"] == k, "split"]) == {"test"}
        assert {"train", "val"} <= set(inv.loc[inv["fold"] != k, "split"])
        metrics = json.loads((results / f"runs/{fold_run(k)}/metrics.json").read_text())
        assert metrics["run"]["fold"] == k
        assert metrics["n_train_tiles"] == len(
            TileSet.load(results / f"chips/alps/fold{k}/train.npz")
        )
    # Out of fold: every chip scored by exactly one fold model, on all its labelled pixels.
    per_chip = [pd.read_csv(results / f"eval/{fold_run(k)}/chips/alps.csv") for k in (0, 1)]
    assert [set(c["image"]) for c in per_chip] == tested
    scored = pd.concat(per_chip).set_index("image")["n_pixels"]
    for image, n_pixels in scored.items():
        dn, mask = chip_arrays(next(s for s in ALPS if s.stem == Path(image).stem))
        assert n_pixels == int(((mask != 255) & (dn[0] != 0)).sum())
    # Table 3: pooled out-of-fold F1 from the summed counts, and mean ± std over folds.
    folds = [
        json.loads((results / f"eval/{fold_run(k)}/chips/alps.json").read_text()) for k in (0, 1)
    ]
    assert [f["fold"] for f in folds] == [0, 1] and all(f["out_of_fold"] for f in folds)
    total = {n: sum(f["pooled"][n] for f in folds) for n in ("tp", "fp", "fn", "tn")}
    pooled_f1 = 2 * total["tp"] / (2 * total["tp"] + total["fp"] + total["fn"])
    table = pd.read_csv(results / "table3.csv")
    run_row = table[~table["baseline"]].iloc[0]
    assert run_row["f1_alps_oof_mean"] == pytest.approx(pooled_f1)
    fold_f1 = [f["pooled"]["f1"] for f in folds]
    assert run_row["f1_alps_folds_mean"] == pytest.approx(np.mean(fold_f1))
    assert run_row["f1_alps_folds_std"] == pytest.approx(np.std(fold_f1, ddof=1))
    assert 0 <= run_row["f1_karakoram_mean"] <= 1
    # Model selection: the mean over the folds' selection scores.
    table1 = pd.read_csv(results / "table1_models.csv")
    scores = [
        json.loads((results / f"runs/{fold_run(k)}/metrics.json").read_text())["selection_score"]
        for k in (0, 1)
    ]
    assert table1.loc[~table1["baseline"], "selection_score_mean"].iloc[0] == pytest.approx(
        np.mean(scores)
    )


def test_plan_trains_on_each_label_with_validation_and_on_all(tmp_path, dry_run):
    output = dry_run(
        tmp_path, chip_config(tmp_path, ["each", "all"], [1]), "results/table3.csv"
    ).output
    runs = set(re.findall(r"output: results/runs/(\S+)/metrics\.json", output))
    assert {run.split("/")[2] for run in runs} == {"oct2000", "alps", "oct2000+alps"}
    scored = set(re.findall(r"output: results/eval/(\S+)/chips/karakoram\.json", output))
    baselines = {f"baseline/{dates}" for dates in ("oct2000", "alps", "oct2000+alps")}
    assert scored == runs | baselines  # one seed: no ensembles
    assert "results/chips/alps/train.npz" in output
    # A test set is scored chip by chip: its tile store is made only when asked for.
    assert "results/tiles/alps" not in output and "results/chips/karakoram" not in output


def test_the_final_seeds_make_the_ensemble_scored_on_the_test_set(tmp_path, dry_run):
    config = chip_config(tmp_path, ["all"], [1])
    config["final"]["seeds"] = [1, 2, 3]
    output = dry_run(tmp_path, config, "results/table3.csv").output
    label = f"ensemble/pspnet/{HP_SLUG}/oct2000+alps/noaug"
    job = output[output.index(f"output: results/eval/{label}/chips/karakoram.json") - 2000 :]
    job = job[job.rindex("rule evaluate_chips_ensemble:") :]
    members = re.findall(r"results/runs/\S+?/seed(\d)/best\.pt", job.split("output:")[0])
    assert sorted(members) == ["1", "2", "3"]
