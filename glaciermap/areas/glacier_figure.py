"""The per-glacier chart of the report: the glaciers that changed most between two
dates, with the seed ensemble members' range as error bars (rule
``maps_glacier_figure``). With one date there is no change to show, so it
compares the largest glaciers' mapped area with their reference area instead.

Changes measured on less than ``min_observed_fraction`` of a glacier (the flag
``low_observed`` of ``glacier_change.csv``) are drawn hatched and named so; the
unassigned ice (beyond every outline) is a bar of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from glaciermap.areas.change_figure import GAINED, LOST
from glaciermap.errors import InputDataError
from glaciermap.utils.atomic import atomic_path

DPI = 120
REFERENCE_COLOUR = (0.6, 0.6, 0.6, 1.0)
MAPPED_COLOUR = (0.25, 0.63, 1.0, 1.0)


def _label(row: pd.Series) -> str:
    name = row.get("name")
    return f"{row['glacier_id']} {name}" if isinstance(name, str) and name else row["glacier_id"]


def _error_bars(values: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray | None:
    """Asymmetric error bars (2, n) from the members' range; None without members."""
    if low.isna().all():
        return None
    return np.vstack(
        [(values - low).fillna(0).clip(lower=0), (high - values).fillna(0).clip(lower=0)]
    )


def _change_chart(axes: Axes, rows: pd.DataFrame) -> str:
    rows = rows.iloc[::-1]  # the largest change on top
    positions = np.arange(len(rows))
    colours = [LOST if change < 0 else GAINED for change in rows["change_km2"]]
    bars = axes.barh(
        positions,
        rows["change_km2"],
        color=colours,
        xerr=_error_bars(
            rows["change_km2"], rows["member_min_change_km2"], rows["member_max_change_km2"]
        ),
        capsize=3,
    )
    for bar, flagged in zip(bars, rows["low_observed"].astype(bool), strict=True):
        if flagged:
            bar.set_hatch("///")
            bar.set_alpha(0.5)
    labels = [
        _label(row) + (" (partly observed)" if row["low_observed"] else "")
        for _, row in rows.iterrows()
    ]
    axes.set_yticks(positions, labels, fontsize=8)
    axes.axvline(0, color="black", lw=0.8)
    axes.set_xlabel("area change over the pixels observed on both dates (km²)")
    first = rows.iloc[0]
    return f"{first['date_from']} → {first['date_to']}"


def _area_chart(axes: Axes, rows: pd.DataFrame) -> str:
    rows = rows.iloc[::-1]
    positions = np.arange(len(rows))
    axes.barh(positions + 0.2, rows["reference_km2"], height=0.4, color=REFERENCE_COLOUR)
    axes.barh(
        positions - 0.2,
        rows["area_km2"],
        height=0.4,
        color=MAPPED_COLOUR,
        xerr=_error_bars(rows["area_km2"], rows["member_min_km2"], rows["member_max_km2"]),
        capsize=3,
    )
    axes.set_yticks(positions, [_label(row) for _, row in rows.iterrows()], fontsize=8)
    axes.set_xlabel("glacier area (km²)")
    return f"{rows.iloc[0]['date']} ({rows.iloc[0]['acquired']}), one date: no change to show"


def glacier_chart(
    glaciers_csv: str | Path,
    change_csv: str | Path,
    run: str,
    out_png: str | Path,
    top: int = 15,
) -> Figure:
    """Bar chart of ``run``'s ``top`` glaciers by absolute change (first pair of dates),
    or by reference area when the table holds a single date."""
    glaciers = pd.read_csv(glaciers_csv, dtype={"glacier_id": str, "name": str})
    change = pd.read_csv(change_csv, dtype={"glacier_id": str, "name": str})
    change = change[change["run"] == run]
    figure = Figure(figsize=(9, 1.2 + 0.32 * top), layout="constrained")
    axes = figure.subplots()
    if len(change):
        first = change[
            (change["date_from"] == change["date_from"].iloc[0])
            & (change["date_to"] == change["date_to"].iloc[0])
        ]
        rows = first.reindex(first["change_km2"].abs().sort_values(ascending=False).index)
        subtitle = _change_chart(axes, rows.head(top))
        handles = [
            Patch(color=LOST, label="lost"),
            Patch(color=GAINED, label="gained"),
            Patch(facecolor="white", edgecolor="black", hatch="///", label="partly observed"),
        ]
    else:
        rows = glaciers[(glaciers["run"] == run) & (glaciers["glacier_id"] != "unassigned")]
        if rows.empty:
            raise InputDataError(f"{glaciers_csv}: no glacier rows of {run}")
        rows = rows[rows["date"] == rows["date"].iloc[0]]
        subtitle = _area_chart(axes, rows.sort_values("reference_km2", ascending=False).head(top))
        handles = [
            Patch(color=REFERENCE_COLOUR, label="reference outline"),
            Patch(color=MAPPED_COLOUR, label="mapped"),
        ]
    if (rows.get("members", pd.Series(dtype=float)).fillna(0) > 1).any():
        handles.append(
            Patch(facecolor="none", edgecolor="none", label="error bars: members' range")
        )
    axes.legend(handles=handles, loc="lower right", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(f"{run}\n{subtitle}", fontsize=10)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, dpi=DPI)
    return figure
