"""Table 3 with external chip test sets: a column per set (F1 mean ± std over seeds),
seed-ensemble rows, and the baseline scored on the sets too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glaciermap.data.chip_dataset import ChipDataset
from glaciermap.evaluation.chips import ChipScores, write_chip_scores
from glaciermap.evaluation.metrics import ConfusionCounts
from glaciermap.reporting.tables import build_table3

HP = "dropout0.4-softmax-mean"


def scene_eval(root: Path, run: str, date: str, f1: float) -> Path:
    region = {"tp": 1, "fp": 0, "fn": 0, "tn": 1, "f1": f1, "iou": f1 / 2, "precision": 1.0,
              "recall": f1}  # fmt: skip
    path = root / "eval" / run / f"{date}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": run, "date": date, "test": region, "train": region}))
    return path


def chip_eval(root: Path, run: str, label: str, tp: int, fp: int, fn: int, members=1) -> Path:
    """An evaluation JSON written by the chip evaluation itself."""
    dataset = ChipDataset(label, "x/*.tif", "test", masks="m/{stem}.tif")
    path = root / "eval" / run / "chips" / f"{label}.json"
    scores = ChipScores(ConfusionCounts(tp, fp, fn, 100))
    write_chip_scores(scores, dataset, path, None, run, {"n_members": members})
    return path


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn)


def test_external_test_sets_get_a_column_and_ensembles_a_row(tmp_path):
    runs = {seed: f"pspnet/{HP}/oct2000+alps/noaug/seed{seed}" for seed in (1, 2)}
    evals = [scene_eval(tmp_path, runs[s], "oct2000", 0.8 + 0.02 * s) for s in (1, 2)]
    counts = {1: (60, 20, 20), 2: (70, 10, 20)}
    external = [chip_eval(tmp_path, runs[s], "karakoram", *counts[s]) for s in (1, 2)]
    external.append(chip_eval(tmp_path, f"ensemble/pspnet/{HP}/oct2000+alps/noaug",
                              "karakoram", 72, 12, 16, members=2))  # fmt: skip
    baseline = [scene_eval(tmp_path, "baseline/oct2000+alps", "oct2000", 0.7)]
    external.append(chip_eval(tmp_path, "baseline/oct2000+alps", "karakoram", 50, 50, 30))
    out, out_long = tmp_path / "table3.csv", tmp_path / "table3_long.csv"
    build_table3(evals, baseline, out, out_long, external_eval_files=external)

    table = pd.read_csv(out)
    assert list(table.columns[-4:]) == [
        "f1_oct2000_mean", "f1_oct2000_std", "f1_karakoram_mean", "f1_karakoram_std"
    ]  # fmt: skip
    assert list(zip(table["baseline"], table["ensemble"], strict=True)) == [
        (False, False), (False, True), (True, False)
    ]  # fmt: skip
    seeds = [f1(*counts[s]) for s in (1, 2)]
    run, ensemble, base = table.iloc[0], table.iloc[1], table.iloc[2]
    assert run["f1_karakoram_mean"] == pytest.approx(np.mean(seeds))
    assert run["f1_karakoram_std"] == pytest.approx(np.std(seeds, ddof=1))
    assert run["n_seeds"] == 2 and run["f1_oct2000_mean"] == pytest.approx(0.83)
    assert ensemble["f1_karakoram_mean"] == pytest.approx(f1(72, 12, 16))
    assert np.isnan(ensemble["f1_oct2000_mean"]) and ensemble["n_seeds"] == 2
    assert base["f1_karakoram_mean"] == pytest.approx(f1(50, 50, 30))
    markdown = out.with_suffix(".md").read_text()
    assert "F1 karakoram external" in markdown and "PSPNet seed ensemble" in markdown
    assert f"{np.mean(seeds):.3f} ± {np.std(seeds, ddof=1):.3f}" in markdown

    long = pd.read_csv(out_long)
    external_rows = long[long["region"] == "external"]
    assert set(external_rows["date"]) == {"karakoram"}
    assert len(external_rows) == 3 * 4  # run, ensemble, baseline x 4 metrics
    iou = external_rows[(external_rows["metric"] == "iou") & external_rows["ensemble"]]
    assert iou["mean"].item() == pytest.approx(72 / (72 + 12 + 16))


def test_without_external_sets_the_table_is_unchanged(tmp_path):
    evals = [scene_eval(tmp_path, f"fpn/{HP}/july/noaug/seed1", "july", 0.8)]
    baseline = [scene_eval(tmp_path, "baseline/july", "july", 0.6)]
    out = tmp_path / "table3.csv"
    build_table3(evals, baseline, out, tmp_path / "long.csv")
    table = pd.read_csv(out)
    assert [c for c in table.columns if c.startswith("f1_")] == ["f1_july_mean", "f1_july_std"]
    assert "external" not in out.with_suffix(".md").read_text()
