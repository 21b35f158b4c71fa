"""Tables 1-3: rows, columns, mean/std over seeds, baseline rows, winners."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from html_tables import read_html_tables

from glaciermap.errors import InputDataError
from glaciermap.reporting.html_tables import write_csv_html
from glaciermap.reporting.summary import workflow_summary
from glaciermap.reporting.tables import (
    build_table1,
    build_table2,
    build_table3,
    build_table_augmentation,
    winner_aug,
    winner_hparams,
    winner_model,
)

HP = "dropout0.4-softmax-mean"


def write_metrics(root: Path, model: str, hparams: str, aug: str, seed: int, score: float) -> Path:
    run = {"model": model, "hparams": hparams, "dates": "july+august", "aug": aug, "seed": seed}
    epochs = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_f1": score, "val_f1": score}
        for e in range(1, 4)
    ]
    data = {
        "run": run,
        "epochs": epochs,
        "selection_score": score,
        "best_epoch": 3,
        "best_val_f1": score + 0.01,
        "n_parameters": 1_000_000,
        "train_seconds": 10.0 * seed,
    }
    path = root / "runs" / model / hparams / "july+august" / aug / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


def write_baseline(root: Path) -> Path:
    path = root / "baseline.json"
    path.write_text(json.dumps({"rules": [{}, {}], "val_f1": 0.55, "fit_seconds": 1.5}))
    return path


def test_table1_mean_std_and_winner(tmp_path):
    scores = {"fpn": (0.70, 0.74), "pspnet": (0.80, 0.60), "deeplabv3plus": (0.76, 0.78)}
    files = [
        write_metrics(tmp_path, m, HP, "noaug", seed, s)
        for m, pair in scores.items()
        for seed, s in zip((1, 2), pair, strict=True)
    ]
    out = tmp_path / "table1_models.csv"
    build_table1(files, write_baseline(tmp_path), out)
    table = pd.read_csv(out)
    assert list(table["model"]) == ["deeplabv3plus", "fpn", "pspnet", "baseline"]
    fpn = table[table["model"] == "fpn"].iloc[0]
    assert fpn["selection_score_mean"] == pytest.approx(0.72)
    assert fpn["selection_score_std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert fpn["n_seeds"] == 2 and fpn["epochs"] == 3 and fpn["train_seconds_mean"] == 15
    assert table["baseline"].tolist() == [False, False, False, True]
    assert table.iloc[-1]["selection_score_mean"] == pytest.approx(0.55)
    # pspnet has the best single seed (0.80) but the criterion is the mean over seeds
    assert winner_model(out) == "deeplabv3plus"
    markdown = out.with_suffix(".md").read_text()
    assert "DeepLabV3+" in markdown and "threshold baseline" in markdown and "±" in markdown


def test_table2_grid_cells_and_winner(tmp_path):
    cells = {"dropout0.5-sigmoid-mean": 0.9, "dropout0.1-softmax-max": 0.8, HP: 0.85}
    files = [
        write_metrics(tmp_path, "deeplabv3plus", hp, "noaug", seed, s + 0.01 * seed)
        for hp, s in cells.items()
        for seed in (1, 2)
    ]
    out = tmp_path / "table2_hparams.csv"
    build_table2(files, write_baseline(tmp_path), out)
    table = pd.read_csv(out)
    assert len(table) == 4
    assert {"dropout", "activation", "pooling"} <= set(table.columns)
    top = table.iloc[0]
    assert (top["dropout"], top["activation"], top["pooling"]) == (0.5, "sigmoid", "mean")
    assert winner_hparams(out) == "dropout0.5-sigmoid-mean"


def test_table_augmentation_winner(tmp_path):
    files = [
        write_metrics(tmp_path, "fpn", HP, aug, seed, s)
        for aug, s in (("noaug", 0.8), ("aug-concat", 0.6))
        for seed in (1, 2, 3)
    ]
    out = tmp_path / "table_augmentation.csv"
    build_table_augmentation(files, write_baseline(tmp_path), out)
    table = pd.read_csv(out)
    assert list(table["aug"].fillna("")) == ["noaug", "aug-concat", ""]
    assert winner_aug(out) == "noaug"


def test_winner_refuses_table_without_runs(tmp_path):
    out = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "model": ["baseline"],
            "selection_score_mean": [0.5],
            "selection_score_std": [None],
            "baseline": [True],
        }
    ).to_csv(out, index=False)
    with pytest.raises(InputDataError, match="t.csv"):
        winner_model(out)


def write_eval(root: Path, run: str, date: str, f1: float) -> Path:
    region = {
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "tn": 1,
        "f1": f1,
        "iou": f1 / 2,
        "precision": 1.0,
        "recall": f1,
    }
    path = root / "eval" / run / f"{date}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"test": region, "train": {**region, "f1": 0.99}}))
    return path


def test_table3_rows_columns_and_long_form(tmp_path):
    f1 = {
        ("july", "july"): 0.8,
        ("july", "august"): 0.7,
        ("august", "july"): 0.75,
        ("august", "august"): 0.85,
        ("july+august", "july"): 0.82,
        ("july+august", "august"): 0.88,
    }
    evals = [
        write_eval(tmp_path, f"fpn/{HP}/{dates}/noaug/seed{seed}", date, v + 0.02 * seed)
        for (dates, date), v in f1.items()
        for seed in (1, 2)
    ]
    baseline = [write_eval(tmp_path, "baseline/july+august", d, 0.6) for d in ("july", "august")]
    out, out_long = tmp_path / "table3.csv", tmp_path / "table3_long.csv"
    build_table3(evals, baseline, out, out_long)
    table = pd.read_csv(out)
    assert list(table["trained_on"]) == ["july", "august", "july+august", "july+august"]
    assert list(table["baseline"]) == [False, False, False, True]
    assert {"f1_july_mean", "f1_july_std", "f1_august_mean", "f1_august_std"} <= set(table.columns)
    row = table.iloc[2]
    assert row["f1_august_mean"] == pytest.approx(0.88 + 0.03)
    assert row["f1_august_std"] == pytest.approx(np.std([0.90, 0.92], ddof=1))
    assert row["n_seeds"] == 2
    assert table.iloc[3]["f1_july_mean"] == pytest.approx(0.6)
    long = pd.read_csv(out_long)
    assert set(long["metric"]) == {"f1", "iou", "precision", "recall"}
    assert set(long["region"]) == {"test", "train"}
    assert len(long) == (3 * 2 + 2) * 2 * 4  # (rows x dates) x regions x metrics
    assert "±" in out.with_suffix(".md").read_text()
    assert out_long.with_suffix(".md").exists()
    # The HTML twin (what the report shows) holds the Markdown twin's cells, in ASCII.
    html = out.with_suffix(".html").read_text(encoding="ascii")
    (rows,) = read_html_tables(html)
    assert rows[0][:2] == ["trained on", "model"] and rows[0][-1] == "seeds"
    assert rows[3][0] == "july + august" and rows[3][-1] == "2"
    assert rows[3][rows[0].index("F1 august test")] == "0.910 ± 0.014"
    assert rows[4][1] == "threshold baseline"
    (long_rows,) = read_html_tables(out_long.with_suffix(".html").read_text(encoding="ascii"))
    assert len(long_rows) == 1 + len(long)


def test_html_twin_of_a_csv_table(tmp_path):
    csv = tmp_path / "areas.csv"
    pd.DataFrame({"run": ["a", "b"], "area_km2": [12.34567, np.nan]}).to_csv(csv, index=False)
    write_csv_html(csv, tmp_path / "areas.html")
    assert read_html_tables((tmp_path / "areas.html").read_text()) == [
        [["run", "area_km2"], ["a", "12.346"], ["b", ""]]
    ]
    header_only = tmp_path / "change.csv"
    header_only.write_text("run,change_km2\n")
    write_csv_html(header_only, tmp_path / "change.html")
    assert read_html_tables((tmp_path / "change.html").read_text()) == [[["run", "change_km2"]]]


def test_workflow_summary_prints_table3_and_the_map_folders(tmp_path):
    assert workflow_summary(tmp_path) is None  # nothing made yet
    (tmp_path / "results").mkdir()
    (tmp_path / "results/table3.md").write_text("| trained on | F1 |\n|:--|:--|\n| x | 0.9 |\n")
    for run in ("fpn/a/x/noaug/seed1", "ensemble/fpn/a/x/noaug"):
        folder = tmp_path / "results/maps" / run / "x"
        folder.mkdir(parents=True)
        (folder / "mask.tif").write_bytes(b"")
    text = workflow_summary(tmp_path)
    assert "| x | 0.9 |" in text
    assert "results/maps/ensemble/fpn/a/x/noaug/x/" in text
    assert "results/maps/fpn/a/x/noaug/seed1/x/" in text and "2 folders" in text


def test_cli_table_and_bad_input(tmp_path):
    from glaciermap.cli import main

    files = [str(write_metrics(tmp_path, "fpn", HP, "noaug", s, 0.7)) for s in (1, 2)]
    out = tmp_path / "t1.csv"
    baseline = str(write_baseline(tmp_path))
    assert (
        main(["table", "models", "--metrics", *files, "--baseline", baseline, "--out", str(out)])
        == 0
    )
    assert pd.read_csv(out)["n_seeds"].tolist() == [2, 1]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    args = ["table", "models", "--metrics", str(broken), "--baseline", baseline, "--out", "x.csv"]
    assert main(args) == 1
