"""Error bars of glacier areas: how far a seed ensemble's members disagree.

For each seed ensemble (run label ``ensemble/...``) and each date and zone, the
area table gets the spread of its members' areas (``members``,
``member_min_km2``, ``member_max_km2``, ``member_std_km2``, sample standard
deviation) next to the ensemble's own area, and ``uncertain_km2``: the
observed area whose per-pixel uncertainty (standard deviation of the members'
probabilities, ``uncertainty.tif``) exceeds ``inference.uncertainty_threshold``.
The change table gets the same spread of the members' changes. Rows of single
runs, of the reference and of outlines leave these columns empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from glaciermap.areas.areas import Block, observed_pixels, zone_sums

SPREAD_COLUMNS = [
    "members", "member_min_km2", "member_max_km2", "member_std_km2", "uncertain_km2",
]  # fmt: skip
CHANGE_SPREAD_COLUMNS = [
    "members", "member_min_change_km2", "member_max_change_km2", "member_std_change_km2",
]  # fmt: skip
_ZONE = ["date", "zone_type", "zone"]
_CHANGE_ZONE = ["zone_type", "zone", "date_from", "date_to"]


def uncertain_areas(
    uncertainty_path: str | Path,
    validity_path: str | Path | None,
    threshold: float,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Per zone, ``uncertain_km2``: observed pixels whose uncertainty exceeds ``threshold``."""
    rasters = {"uncertainty": Path(uncertainty_path)}
    if validity_path is not None:
        rasters["validity"] = Path(validity_path)

    def layers(block: Block) -> dict[str, np.ndarray]:
        uncertain = np.nan_to_num(block.arrays["uncertainty"], nan=0.0) > threshold
        return {"uncertain_km2": uncertain & observed_pixels(block)}

    return zone_sums(
        rasters, layers, regions_path=regions_path, glaciers=glaciers, block_size=block_size
    )


def _spread(values: pd.DataFrame, keys: list[str], column: str, columns: list[str]) -> pd.DataFrame:
    """Count, min, max and sample std of ``column`` per ``keys``, named ``columns``."""
    grouped = values.groupby(keys, sort=False)[column]
    statistics = [grouped.count(), grouped.min(), grouped.max(), grouped.std(ddof=1)]
    return pd.DataFrame(dict(zip(columns, statistics, strict=True))).reset_index()


def with_spread(
    table: pd.DataFrame,
    members: Mapping[str, Sequence[str]],
    value: str,
    zone: list[str],
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``table`` with the spread of ``value`` over each ensemble's member runs on the
    ensemble's predicted rows (``extra``: more columns keyed by run and ``zone``)."""
    columns = CHANGE_SPREAD_COLUMNS if value == "change_km2" else SPREAD_COLUMNS
    frames = []
    predicted = table[table["source"] == "predicted"]
    for ensemble, runs in members.items():
        spread = _spread(predicted[predicted["run"].isin(runs)], zone, value, columns[:4])
        frames.append(spread.assign(run=ensemble, source="predicted"))
    if not frames:
        return table.assign(**{name: np.nan for name in columns})
    spread = pd.concat(frames, ignore_index=True)
    if extra is not None:
        spread = spread.merge(extra, on=["run", *zone], how="left")
    merged = table.merge(spread, on=["run", "source", *zone], how="left")
    for name in columns:
        if name not in merged:
            merged[name] = np.nan
    return merged[[*table.columns, *columns]]


def area_spread(
    areas: pd.DataFrame,
    members: Mapping[str, Sequence[str]],
    uncertain: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The area table with :data:`SPREAD_COLUMNS` (``uncertain``: run, date, zone
    rows of ``uncertain_km2`` from :func:`uncertain_areas`)."""
    return with_spread(areas, members, "area_km2", _ZONE, uncertain)


def change_spread(change: pd.DataFrame, members: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The change table with :data:`CHANGE_SPREAD_COLUMNS`."""
    return with_spread(change, members, "change_km2", _CHANGE_ZONE)
