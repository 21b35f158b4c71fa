"""Tables 1-3 of the study, from the runs' metrics.json and eval JSON files.

Every table is a CSV (numbers, for programs), and a Markdown and an HTML file next
to it (same name, ``.md`` and ``.html``; ``mean ± std`` strings, for people; the
HTML one is what the Snakemake report shows). Every table carries a
row for the threshold baseline (``baseline`` column True) so that the gain of
each model is visible. Standard deviations are sample standard deviations over
seeds (ddof=1); they are empty with a single seed.

The stage winners follow the study's criterion: the highest selection score
(mean validation F1 over the last epochs), averaged over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import ConfusionCounts
from glaciermap.reporting.html_tables import write_table_html
from glaciermap.runs import BASELINE, DISPLAY_NAMES, HParams, parse_label
from glaciermap.utils.atomic import atomic_path, write_text_atomic

PathLike = str | Path
BASELINE_LABEL = "threshold baseline"
RUN_FIELDS = ("model", "hparams", "dates", "aug", "seed")
SCORES = ("f1", "iou", "precision", "recall")


def read_json(path: PathLike, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputDataError(f"{what} {path} does not hold a JSON object")
    return data


def _eval_identity(path: Path, data: dict[str, Any]) -> tuple[str, str]:
    """(run, date) of ``results/eval/{run}/{date}.json``: stored fields, else the path."""
    run, date = data.get("run"), data.get("date")
    if run and date:
        return run, date
    parts = path.parts
    if "eval" not in parts:
        raise InputDataError(f"{path}: no run/date fields and not under results/eval/")
    start = len(parts) - 1 - parts[::-1].index("eval")
    return "/".join(parts[start + 1 : -1]), path.stem


# ---------------------------------------------------------------- selection tables


def _metrics_row(path: PathLike) -> dict[str, Any]:
    data = read_json(path, "run metrics")
    try:
        run = data["run"]
        row = {field: run[field] for field in RUN_FIELDS}
        row.update(
            selection_score=float(data["selection_score"]),
            best_val_f1=float(data["best_val_f1"]),
            epochs=len(data["epochs"]),
            n_parameters=int(data["n_parameters"]),
            train_seconds=float(data["train_seconds"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(f"run metrics {path}: missing or bad field {exc}") from exc
    return row


def _baseline_row(baseline_json: PathLike) -> dict[str, Any]:
    data = read_json(baseline_json, "threshold baseline")
    if data.get("val_f1") is None:
        raise InputDataError(f"threshold baseline {baseline_json}: no val_f1 (fit without --val)")
    return {
        "model": BASELINE,
        "selection_score_mean": float(data["val_f1"]),
        "best_val_f1_mean": float(data["val_f1"]),
        "n_seeds": 1,
        "n_parameters": len(data.get("rules", [])),
        "train_seconds_mean": float(data.get("fit_seconds", np.nan)),
        "baseline": True,
    }


def selection_table(
    metrics_files: Sequence[PathLike], keys: Sequence[str], baseline_json: PathLike
) -> pd.DataFrame:
    """Runs grouped by ``keys`` with the selection score's mean and std over seeds.

    Columns: keys, ``n_seeds``, ``selection_score_mean``, ``selection_score_std``,
    ``best_val_f1_mean``, ``epochs``, ``n_parameters``, ``train_seconds_mean``,
    ``baseline``; best first, the baseline row last.
    """
    if not metrics_files:
        raise InputDataError("no run metrics.json given for the table")
    runs = pd.DataFrame([_metrics_row(p) for p in metrics_files])
    grouped = runs.groupby(list(keys), sort=False)
    table = grouped.agg(
        n_seeds=("seed", "nunique"),
        selection_score_mean=("selection_score", "mean"),
        selection_score_std=("selection_score", "std"),
        best_val_f1_mean=("best_val_f1", "mean"),
        epochs=("epochs", "max"),
        n_parameters=("n_parameters", "max"),
        train_seconds_mean=("train_seconds", "mean"),
    ).reset_index()
    table["baseline"] = False
    table = table.sort_values(
        ["selection_score_mean", "selection_score_std"], ascending=[False, True], kind="stable"
    )
    baseline = pd.DataFrame([_baseline_row(baseline_json)])
    return pd.concat([table, baseline], ignore_index=True)


def build_table1(
    metrics_files: Sequence[PathLike], baseline_json: PathLike, out_csv: PathLike
) -> pd.DataFrame:
    """Table 1 (model selection): one row per architecture, written to CSV, ``.md``, ``.html``.

    ``metrics_files``: the model-selection runs' ``metrics.json`` (all seeds);
    ``baseline_json``: the fitted threshold baseline (with ``val_f1``).
    """
    table = selection_table(metrics_files, ["model", "hparams"], baseline_json)
    table.insert(0, "architecture", [_display_name(m) for m in table["model"]])
    _write_table(table, out_csv, _selection_for_people(table, ["architecture", "hparams"]))
    return table


def build_table2(
    metrics_files: Sequence[PathLike], baseline_json: PathLike, out_csv: PathLike
) -> pd.DataFrame:
    """Table 2 (hyperparameter grid): one row per grid cell of the winning model."""
    table = selection_table(metrics_files, ["model", "hparams"], baseline_json)
    cells = [HParams.from_slug(s) if s else None for s in table["hparams"].fillna("")]
    table.insert(2, "dropout", [c.dropout if c else np.nan for c in cells])
    table.insert(3, "activation", [c.activation if c else "" for c in cells])
    table.insert(4, "pooling", [c.pooling if c else "" for c in cells])
    columns = ["model", "dropout", "activation", "pooling"]
    _write_table(table, out_csv, _selection_for_people(table, columns))
    return table


def build_table_augmentation(
    metrics_files: Sequence[PathLike], baseline_json: PathLike, out_csv: PathLike
) -> pd.DataFrame:
    """Augmentation table: the winning model and cell with each augmentation mode."""
    table = selection_table(metrics_files, ["model", "hparams", "aug"], baseline_json)
    _write_table(table, out_csv, _selection_for_people(table, ["model", "hparams", "aug"]))
    return table


SelectionTable = Literal["models", "hparams", "augmentation"]


def build_selection_table(
    table: SelectionTable,
    metrics_files: Sequence[PathLike],
    baseline_json: PathLike,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Table 1 (``models``), Table 2 (``hparams``) or the ``augmentation`` table."""
    builders = {
        "models": build_table1,
        "hparams": build_table2,
        "augmentation": build_table_augmentation,
    }
    if table not in builders:
        raise InputDataError(f"unknown selection table {table!r}; one of {', '.join(builders)}")
    return builders[table](metrics_files, baseline_json, out_csv)


def _display_name(model: str) -> str:
    return BASELINE_LABEL if model == BASELINE else DISPLAY_NAMES.get(model, model)


def _winner(table_csv: PathLike, column: str) -> str:
    try:
        table = pd.read_csv(table_csv, keep_default_na=False, na_values=[""])
        runs = table[~table["baseline"].astype(bool)]
        runs = runs.sort_values(
            ["selection_score_mean", "selection_score_std", column],
            ascending=[False, True, True],
            na_position="last",
            kind="stable",
        )
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise InputDataError(f"cannot read selection table {table_csv}: {exc}") from exc
    if runs.empty or pd.isna(runs["selection_score_mean"].iloc[0]):
        raise InputDataError(f"selection table {table_csv} has no model run")
    return str(runs[column].iloc[0])


def winner_model(table1_csv: PathLike) -> str:
    """The ``{model}`` wildcard with the best mean selection score in Table 1."""
    return _winner(table1_csv, "model")


def winner_hparams(table2_csv: PathLike) -> str:
    """The ``{hparams}`` slug (e.g. ``dropout0.5-sigmoid-mean``) that wins Table 2."""
    return _winner(table2_csv, "hparams")


def winner_aug(table_augmentation_csv: PathLike) -> str:
    """The ``{aug}`` mode (``noaug``, ``aug-concat``, ``aug-online``) that wins."""
    return _winner(table_augmentation_csv, "aug")


# ---------------------------------------------------------------- table 3


# Region of the long form for the scores on an external chip test set.
EXTERNAL = "external"
# Regions of a cross-validated chip dataset (split: kfold): each fold run on its own
# test chips (mean ± std over folds and seeds), and the folds' counts pooled per
# seed (out-of-fold F1 of the whole dataset, mean ± std over seeds).
FOLDS = "folds"
POOLED_OOF = "out_of_fold"


def _eval_rows(path: PathLike) -> list[dict[str, Any]]:
    """Long-form rows of one evaluation JSON: a scene's (``results/eval/{run}/{date}.json``,
    regions test and train) or a chip test set's (``.../chips/{label}.json``, region
    ``external``, its label in the ``date`` column)."""
    path = Path(path)
    data = read_json(path, "evaluation")
    if "pooled" in data:  # glaciermap.evaluation.chips
        region = FOLDS if data.get("out_of_fold") else EXTERNAL
        run, date, regions = data.get("run"), data.get("chips"), {region: "pooled"}
        if not run or not date:
            raise InputDataError(f"chip evaluation {path}: no run or chips field")
    else:
        (run, date), regions = _eval_identity(path, data), {"test": "test", "train": "train"}
        if "val" in data:
            regions["val"] = "val"
    try:
        label = parse_label(run)
    except ValueError as exc:
        raise InputDataError(f"evaluation {path}: {exc}") from exc
    members = int(data.get("n_members") or 1)
    rows = []
    for region, key in regions.items():
        if key not in data:
            raise InputDataError(f"evaluation {path}: no '{key}' region")
        for metric in SCORES:
            value = data[key].get(metric)
            rows.append(
                {
                    **label.fields(),
                    "kind": label.kind,
                    "fold": label.fold,
                    "members": members,
                    "date": date,
                    "region": region,
                    "metric": metric,
                    "value": np.nan if value is None else float(value),
                }
            )
    return rows


def _pooled_out_of_fold_rows(files: Sequence[PathLike]) -> list[dict[str, Any]]:
    """Region ``out_of_fold`` rows: per configuration, seed and kfold dataset, the scores
    of the summed counts of all its folds (each fold's run on its own test chips)."""
    folds: dict[tuple[Any, ...], dict[int, ConfusionCounts]] = {}
    expected: dict[tuple[Any, ...], int] = {}
    for path in files:
        data = read_json(path, "evaluation")
        if not data.get("out_of_fold"):
            continue
        label = parse_label(data["run"])
        key = (label.model, label.hparams, label.dates, label.aug, label.seed, data["chips"])
        pooled = data["pooled"]
        counts = ConfusionCounts(*(int(pooled[name]) for name in ("tp", "fp", "fn", "tn")))
        folds.setdefault(key, {})[int(data["fold"])] = counts
        expected[key] = int(data["folds"])
    if not folds:
        return []
    # Here, not at the top: chip_folds loads geopandas, which dry runs do without.
    from glaciermap.data.chip_folds import pooled_out_of_fold

    rows = []
    for key, by_fold in folds.items():
        if sorted(by_fold) != list(range(expected[key])):
            raise InputDataError(
                f"out-of-fold scores of {key}: folds {sorted(by_fold)} of {expected[key]}; "
                "pooling needs every fold"
            )
        scores = pooled_out_of_fold([by_fold[k] for k in sorted(by_fold)])["pooled"]
        model, hparams, dates, aug, seed, chips = key
        for metric in SCORES:
            value = scores[metric]
            rows.append(
                {
                    "model": model, "hparams": hparams, "dates": dates, "aug": aug,
                    "seed": seed, "kind": "run", "members": 1, "date": chips,
                    "fold": None, "n_pooled_folds": len(by_fold),
                    "region": POOLED_OOF, "metric": metric,
                    "value": np.nan if value is None else float(value),
                }
            )  # fmt: skip
    return rows


def table3_long(
    eval_files: Sequence[PathLike],
    baseline_eval_files: Sequence[PathLike],
    external_eval_files: Sequence[PathLike] = (),
) -> pd.DataFrame:
    """Long form: trained_on x model x date x region x metric with mean/std over seeds.

    Seed ensembles (run label ``ensemble/...``) are rows of their own
    (``ensemble`` True, ``n_seeds`` = their members).
    """
    files = [*eval_files, *baseline_eval_files, *external_eval_files]
    # A chip-only config has no scene evaluation: its runs and baseline are scored
    # on the external test sets only.
    rows = [row for path in files for row in _eval_rows(path)]
    values = pd.DataFrame(rows + _pooled_out_of_fold_rows(external_eval_files))
    kinds = set(values["kind"]) if len(values) else set()
    if "run" not in kinds:
        raise InputDataError("no evaluation JSON of a final run given for table 3")
    if "baseline" not in kinds:
        raise InputDataError("no baseline evaluation JSON given for table 3")
    keys = ["dates", "model", "hparams", "aug", "kind", "date", "region", "metric"]
    aggregates = {
        "mean": ("value", "mean"),
        "std": ("value", "std"),
        "n_seeds": ("value", "count"),
        "members": ("members", "max"),
    }
    cross_validated = values["fold"].notna().any()
    if cross_validated:  # several values per seed: count seeds and folds apart
        if "n_pooled_folds" not in values:
            values["n_pooled_folds"] = np.nan
        aggregates |= {
            "seeds": ("seed", "nunique"),
            "n_folds": ("fold", "nunique"),
            "pooled": ("n_pooled_folds", "max"),
        }
    long = (
        values.groupby(keys, sort=False)
        .agg(**aggregates)
        .reset_index()
        .rename(columns={"dates": "trained_on"})
    )
    if cross_validated:
        long["n_seeds"] = long["seeds"].where(long["seeds"] > 0, long["n_seeds"])
        long["n_folds"] = long["n_folds"].where(long["pooled"].isna(), long["pooled"])
        long = long.drop(columns=["seeds", "pooled"])
    ensemble = long["kind"] == "ensemble"
    long.loc[ensemble, "n_seeds"] = long.loc[ensemble, "members"]
    long["baseline"] = long["kind"] == "baseline"
    long["ensemble"] = ensemble
    return long.drop(columns=["kind", "members"])


def build_table3(
    eval_files: Sequence[PathLike],
    baseline_eval_files: Sequence[PathLike],
    out_csv: PathLike,
    out_long_csv: PathLike,
    external_eval_files: Sequence[PathLike] = (),
) -> pd.DataFrame:
    """Table 3: F1 on the test region per evaluated date, and on each external chip
    test set, one row per training set.

    ``eval_files``: ``results/eval/{run}/{date}.json`` of the final runs (every
    seed, every date; seed ensembles ``ensemble/...`` too where there are);
    ``baseline_eval_files``: the baseline's eval JSONs (run label
    ``baseline/{dates}``); ``external_eval_files``: ``results/eval/{run,
    ensemble/..., baseline/...}/chips/{label}.json`` of the external test sets.
    Rows keep the input order of training sets, each run row followed by its
    ensemble's, baseline rows last. ``out_csv`` has ``f1_{date}_mean`` /
    ``f1_{date}_std`` columns, then ``f1_{label}_mean`` / ``f1_{label}_std`` per
    external test set; ``out_long_csv`` holds F1, IoU, precision and recall for the
    test and train regions and the external sets (region ``external``). Both are
    also written as Markdown.
    """
    long = table3_long(eval_files, baseline_eval_files, external_eval_files)
    regions = ["test", EXTERNAL, POOLED_OOF, FOLDS]
    f1 = long[long["region"].isin(regions) & (long["metric"] == "f1")]
    row_keys = ["trained_on", "model", "hparams", "aug", "baseline", "ensemble"]
    columns = [  # (column label, region): the dates, the external test sets, the folds
        (d, region) for region in regions for d in dict.fromkeys(f1[f1["region"] == region]["date"])
    ]
    table = f1[row_keys].drop_duplicates().reset_index(drop=True)
    table.insert(1, "n_seeds", 0)
    markdown_rows = []
    for i, row in table.iterrows():
        cells = f1[(f1[row_keys] == row[row_keys]).all(axis=1)]
        table.loc[i, "n_seeds"] = int(cells["n_seeds"].max())
        if "n_folds" in cells:
            table.loc[i, "n_folds"] = int(cells["n_folds"].max())
        name = _display_name(row["model"])
        md = {
            "trained on": row["trained_on"].replace("+", " + "),
            "model": f"{name} seed ensemble" if row["ensemble"] else name,
            "hyperparameters": row["hparams"],
            "augmentation": row["aug"],
        }
        for date, region in columns:
            cell = cells[(cells["date"] == date) & (cells["region"] == region)]
            mean = cell["mean"].iloc[0] if len(cell) else np.nan
            std = cell["std"].iloc[0] if len(cell) and not row["ensemble"] else np.nan
            name, title = _table3_column(date, region)
            table.loc[i, f"{name}_mean"] = mean
            table.loc[i, f"{name}_std"] = std
            md[title] = _mean_std(mean, std)
        md["seeds"] = int(table.loc[i, "n_seeds"])
        if "n_folds" in cells:
            md["folds"] = int(table.loc[i, "n_folds"])
        markdown_rows.append(md)
    order = _table3_order(table)
    table = table.loc[order].reset_index(drop=True)
    markdown = pd.DataFrame([markdown_rows[i] for i in order])
    _write_table(table, out_csv, markdown)
    long_md = long.assign(
        model=[
            f"{_display_name(m)} seed ensemble" if e else _display_name(m)
            for m, e in zip(long["model"], long["ensemble"], strict=True)
        ],
        **{"mean ± std": [_mean_std(m, s) for m, s in zip(long["mean"], long["std"], strict=True)]},
    ).drop(columns=["mean", "std", "baseline", "ensemble"])
    _write_table(long, out_long_csv, long_md)
    return table


def _table3_column(date: str, region: str) -> tuple[str, str]:
    """Column name stem and Markdown title of a Table 3 column."""
    if region == POOLED_OOF:
        return f"f1_{date}_oof", f"F1 {date} out-of-fold pooled"
    if region == FOLDS:
        return f"f1_{date}_folds", f"F1 {date} per fold"
    return f"f1_{date}", f"F1 {date} {'test' if region == 'test' else 'external'}"


def _table3_order(table: pd.DataFrame) -> list[int]:
    """Model rows by first appearance of their training set, each run row before its
    ensemble row; baseline rows last, in their own order."""
    first = {dates: i for i, dates in reversed(list(enumerate(table["trained_on"])))}
    models = table[~table["baseline"]]
    models = models.assign(
        _first=models["trained_on"].map(first), _kind=models["ensemble"].astype(int)
    )
    ordered = models.sort_values(["_first", "_kind"], kind="stable").index.tolist()
    return ordered + table[table["baseline"]].index.tolist()


# ---------------------------------------------------------------- writing


def _mean_std(mean: float, std: float, digits: int = 3) -> str:
    if pd.isna(mean):
        return "–"
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _selection_for_people(table: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    rows = []
    for _, row in table.iterrows():
        out = {c: ("" if pd.isna(row[c]) else row[c]) for c in label_columns}
        if "model" in out:
            out["model"] = _display_name(row["model"])
        if row["baseline"]:
            out[label_columns[0]] = BASELINE_LABEL
            out.update({c: "" for c in label_columns[1:]})
        out["selection score (val F1)"] = _mean_std(
            row["selection_score_mean"], row["selection_score_std"]
        )
        out["seeds"] = int(row["n_seeds"])
        out["epochs"] = "" if pd.isna(row["epochs"]) else int(row["epochs"])
        out["parameters"] = _parameters(row["n_parameters"], bool(row["baseline"]))
        out["training time (s)"] = (
            "" if pd.isna(row["train_seconds_mean"]) else f"{row['train_seconds_mean']:.1f}"
        )
        rows.append(out)
    return pd.DataFrame(rows)


def _parameters(n: float, baseline: bool) -> str:
    if pd.isna(n):
        return ""
    if baseline:
        return f"{int(n)} thresholds"
    return f"{n / 1e6:.1f} M"


def _write_table(table: pd.DataFrame, out_csv: PathLike, for_people: pd.DataFrame) -> None:
    """Write ``table`` to ``out_csv`` and ``for_people`` next to it as Markdown (``.md``)
    and HTML (``.html``), each atomically."""
    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    markdown = for_people.to_markdown(index=False, disable_numparse=True)
    write_text_atomic(out_csv.with_suffix(".md"), markdown + "\n")
    write_table_html(for_people, out_csv.with_suffix(".html"))
