"""The workflow's per-glacier products (rules ``maps_glaciers`` and
``maps_glacier_outlines``): each map (run, seed ensemble, baseline) split among
the reference glaciers (:mod:`glaciermap.areas.glaciers`).

``results/maps/glaciers.csv``: one row per map, date and glacier (plus one
``unassigned`` row per map and date): reference area, mapped area (observed
glacier pixels in the glacier's territory), observed fraction, mean
probability and uncertainty, and for a seed ensemble its members' spread.
Per map and date the rows sum to the scene's ``area_km2`` in ``areas.csv``.

``results/maps/glacier_change.csv``: per map, glacier and consecutive pair of
dates, the change over the pixels observed on both dates, the members' spread
of that change for an ensemble, and ``low_observed``: the share of the
glacier's reference area observed on both dates is below
``inference.glaciers.min_observed_fraction`` (stated in the column
``min_observed_fraction``); such a change is too partial to trust.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from glaciermap.areas.area_spread import CHANGE_SPREAD_COLUMNS, SPREAD_COLUMNS
from glaciermap.areas.area_tables import reference_glaciers
from glaciermap.areas.glacier_outlines import LAYER, glacier_features
from glaciermap.areas.glaciers import GlacierGrid, glacier_areas, glacier_change
from glaciermap.errors import InputDataError
from glaciermap.inference.provenance import read_provenance
from glaciermap.inference.vectorize import GPKG_OPTIONS, read_first_band
from glaciermap.io.validity import VALID
from glaciermap.runs import parse_label
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)

MEMBER_COLUMNS = SPREAD_COLUMNS[:4]  # members, member_min_km2, member_max_km2, member_std_km2
CHANGE_MEMBER_COLUMNS = CHANGE_SPREAD_COLUMNS
GLACIER_COLUMNS = [
    "run", "model", "date", "acquired", "glacier_id", "name", "reference_km2",
    "observed_fraction", "area_km2", "mean_probability", "mean_uncertainty", "threshold",
    *MEMBER_COLUMNS,
]  # fmt: skip
GLACIER_CHANGE_COLUMNS = [
    "run", "model", "glacier_id", "name", "date_from", "date_to", "reference_km2",
    "common_observed_fraction", "area_from_km2", "area_to_km2", "change_km2", "change_pct",
    *CHANGE_MEMBER_COLUMNS, "low_observed", "min_observed_fraction",
]  # fmt: skip
OUTLINE_COLUMNS = [
    "glacier_id", "name", "kind", "date", "date_label", "area_km2", "perimeter_km",
    "mean_probability", "mean_uncertainty", "member_min_km2", "member_max_km2",
    "observed_fraction", "run", "threshold",
]  # fmt: skip
_THRESHOLD = re.compile(r">=\s*([0-9.eE+-]+)")


@dataclass(frozen=True)
class GlacierSettings:
    """What the per-glacier tables use of ``inference.glaciers`` (defaults in the schema)."""

    max_distance_m: float
    min_observed_fraction: float


def mask_threshold(description: str | None) -> float:
    """The probability threshold a predicted mask states in its band description
    (``glacier (probability >= 0.5)``); NaN for masks without one (the baseline)."""
    match = _THRESHOLD.search(description or "")
    return float(match[1]) if match else float("nan")


@dataclass(frozen=True)
class MapLayers:
    """One map of one date, read whole: its mask, the pixels observed, and optional
    probability and uncertainty."""

    mask: np.ndarray
    observed: np.ndarray
    probability: np.ndarray | None
    uncertainty: np.ndarray | None
    threshold: float

    @classmethod
    def read(
        cls, record: Mapping[str, Any], validity: str | Path | None, grid: GlacierGrid
    ) -> MapLayers:
        """The rasters of ``record`` (and ``validity``), refused unless on ``grid``."""
        paths = {"mask": record["mask"], "validity": validity}
        paths |= {name: record.get(name) for name in ("probability", "uncertainty")}
        arrays: dict[str, np.ndarray] = {}
        description = None
        for name, path in paths.items():
            if not path:
                continue
            values, transform, _, text = read_first_band(path, name)
            if values.shape != grid.zones.shape or not transform.almost_equals(grid.transform):
                raise InputDataError(
                    f"{path} ({name}) is not on the grid of the glacier outlines' raster: "
                    f"shape {values.shape} against {grid.zones.shape}"
                )
            arrays[name] = values
            description = text if name == "mask" else description
        observed = arrays["validity"] == VALID if "validity" in arrays else None
        return cls(
            arrays["mask"],
            np.ones(grid.zones.shape, bool) if observed is None else observed,
            arrays.get("probability"),
            arrays.get("uncertainty"),
            mask_threshold(description),
        )


def glacier_grid(
    outlines: Mapping[str, Any], acquired: str, grid_of: str | Path, max_distance_m: float
) -> GlacierGrid:
    """The configured reference outlines on the grid of raster ``grid_of``."""
    glaciers = reference_glaciers(outlines, acquired, grid_of)
    with rasterio.open(grid_of) as dataset:
        return GlacierGrid.build(
            glaciers, dataset.shape, dataset.transform, dataset.crs, max_distance_m
        )


def _labels(record: Mapping[str, Any]) -> dict[str, str]:
    return {"run": record["run"], "model": parse_label(record["run"]).model}


def _member_spread(rows: pd.DataFrame, keys: list[str], value: str, columns: list[str]):
    grouped = rows.groupby(keys, sort=False)[value]
    statistics = [grouped.count(), grouped.min(), grouped.max(), grouped.std(ddof=1)]
    return pd.DataFrame(dict(zip(columns, statistics, strict=True))).reset_index()


def _with_members(
    table: pd.DataFrame,
    maps: Sequence[Mapping[str, Any]],
    keys: list[str],
    value: str,
    columns: list[str],
) -> pd.DataFrame:
    """``table`` with the spread of ``value`` over each ensemble's members on its rows."""
    frames = [
        _member_spread(table[table["run"].isin(m["members"])], keys, value, columns).assign(
            run=m["run"]
        )
        for m in {m["run"]: m for m in maps if m.get("members")}.values()
    ]
    if not frames:
        return table.assign(**{c: np.nan for c in columns})
    spread = pd.concat(frames, ignore_index=True)
    return table.merge(spread, on=["run", *keys], how="left")


def glacier_table(
    grid: GlacierGrid,
    maps: Sequence[Mapping[str, Any]],
    validity: Mapping[str, str | Path],
    acquired: Mapping[str, str],
) -> pd.DataFrame:
    """Rows of ``glaciers.csv`` (:data:`GLACIER_COLUMNS`) for every map record
    (``run``, ``date``, ``mask``, optional ``probability``, ``uncertainty``, ``members``)."""
    frames = []
    for record in maps:
        layers = MapLayers.read(record, validity.get(record["date"]), grid)
        rows = glacier_areas(
            grid, layers.mask, layers.observed, layers.probability, layers.uncertainty
        )
        frames.append(
            rows.assign(
                **_labels(record),
                date=record["date"],
                acquired=acquired[record["date"]],
                threshold=layers.threshold,
            )
        )
    if not frames:
        return pd.DataFrame(columns=GLACIER_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table = _with_members(table, maps, ["date", "glacier_id"], "area_km2", MEMBER_COLUMNS)
    return table[GLACIER_COLUMNS]


def glacier_change_table(
    grid: GlacierGrid,
    maps: Sequence[Mapping[str, Any]],
    validity: Mapping[str, str | Path],
    date_order: Sequence[str],
    min_observed_fraction: float,
) -> pd.DataFrame:
    """Rows of ``glacier_change.csv`` (:data:`GLACIER_CHANGE_COLUMNS`): each map's
    consecutive dates (in ``date_order``), over the pixels observed on both."""
    rank = {date: i for i, date in enumerate(date_order)}
    unknown = sorted({m["date"] for m in maps} - set(rank))
    if unknown:
        raise InputDataError(f"glacier maps hold dates not in the date order: {unknown}")
    by_run: dict[str, list[Mapping[str, Any]]] = {}
    for record in maps:
        by_run.setdefault(record["run"], []).append(record)
    frames = []
    for records in by_run.values():
        records = sorted(records, key=lambda m: rank[m["date"]])
        for before, after in itertools.pairwise(records):
            first = MapLayers.read(before, validity.get(before["date"]), grid)
            second = MapLayers.read(after, validity.get(after["date"]), grid)
            change = glacier_change(
                grid, (first.mask, second.mask), (first.observed, second.observed)
            )
            frames.append(
                change.assign(**_labels(before), date_from=before["date"], date_to=after["date"])
            )
    if not frames:
        return pd.DataFrame(columns=GLACIER_CHANGE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    earlier = table["area_from_km2"].where(table["area_from_km2"] > 0)
    table["change_pct"] = 100.0 * table["change_km2"] / earlier
    keys = ["glacier_id", "date_from", "date_to"]
    table = _with_members(table, maps, keys, "change_km2", CHANGE_MEMBER_COLUMNS)
    # the unassigned row has no reference area to be observed: never flagged
    table["low_observed"] = table["common_observed_fraction"] < min_observed_fraction
    table["min_observed_fraction"] = min_observed_fraction
    return table[GLACIER_CHANGE_COLUMNS]


def write_glacier_tables(
    maps: Sequence[Mapping[str, Any]],
    grid: GlacierGrid,
    validity: Mapping[str, str | Path],
    acquired: Mapping[str, str],
    date_order: Sequence[str],
    settings: GlacierSettings,
    glaciers_path: str | Path,
    change_path: str | Path,
) -> None:
    """Rule ``maps_glaciers``: ``glaciers.csv`` and ``glacier_change.csv``."""
    table = glacier_table(grid, maps, validity, acquired)
    change = glacier_change_table(grid, maps, validity, date_order, settings.min_observed_fraction)
    with atomic_path(glaciers_path) as table_tmp, atomic_path(change_path) as change_tmp:
        table.to_csv(table_tmp, index=False, float_format="%.6f")
        change.to_csv(change_tmp, index=False, float_format="%.6f")
    log.info(
        "%d glaciers, %d glacier rows, %d change rows (%d flagged below %.0f %% observed)",
        grid.count,
        len(table),
        len(change),
        int(change["low_observed"].sum()) if len(change) else 0,
        100 * settings.min_observed_fraction,
    )


def write_glacier_outlines(
    record: Mapping[str, Any],
    grid: GlacierGrid,
    validity: str | Path | None,
    acquired: str,
    out: str | Path,
    *,
    members: Sequence[Mapping[str, Any]] = (),
    min_area_km2: float = 0.0,
    smoothing: int = 0,
) -> gpd.GeoDataFrame:
    """Rule ``maps_glacier_outlines``: one map's per-glacier outlines (layer
    ``glaciers``, :data:`OUTLINE_COLUMNS`); ``members``: an ensemble's member maps
    of the same date, for the range of their areas; ``smoothing``: rounds of corner
    cutting of the outlines (:mod:`.glacier_outlines`)."""
    layers = MapLayers.read(record, validity, grid)
    features = glacier_features(
        grid,
        layers.mask,
        layers.observed,
        probability=layers.probability,
        uncertainty=layers.uncertainty,
        min_area_km2=min_area_km2,
        smoothing=smoothing,
    )
    areas = glacier_areas(grid, layers.mask, layers.observed)
    fraction = dict(zip(areas["glacier_id"], areas["observed_fraction"], strict=True))
    features["observed_fraction"] = features["glacier_id"].map(fraction)
    member_areas = pd.DataFrame(
        {
            m["run"]: glacier_areas(grid, *_mask_observed(m, validity, grid))["area_km2"].to_numpy()
            for m in members
        },
        index=areas["glacier_id"],
    )
    glacier = features["kind"] == "glacier"
    for column, statistic in (("member_min_km2", "min"), ("member_max_km2", "max")):
        values = member_areas.agg(statistic, axis=1) if members else pd.Series(dtype=float)
        features[column] = features["glacier_id"].map(values).where(glacier)
    features = features.assign(
        date=acquired, date_label=record["date"], run=record["run"], threshold=layers.threshold
    )
    features = features[[*OUTLINE_COLUMNS, "geometry"]]
    # The mask's provenance (checkpoints, threshold, scene) travels to its outlines.
    metadata = read_provenance(record["mask"])
    with atomic_path(out) as tmp:
        features.to_file(
            tmp,
            layer=LAYER,
            geometry_type="MultiPolygon",
            layer_metadata=metadata or None,
            **GPKG_OPTIONS,
        )
    log.info(
        "%d glaciers and %d unassigned patches, %.3f km2, written to %s",
        int(glacier.sum()),
        int((~glacier).sum()),
        features["area_km2"].sum(),
        out,
    )
    return features


def _mask_observed(
    record: Mapping[str, Any], validity: str | Path | None, grid: GlacierGrid
) -> tuple[np.ndarray, np.ndarray]:
    layers = MapLayers.read({"mask": record["mask"]}, validity, grid)
    return layers.mask, layers.observed
