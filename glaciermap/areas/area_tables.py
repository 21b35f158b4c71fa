"""The workflow's area tables and change figure (rules ``maps_areas`` and
``maps_change_figure``): the final runs' masks and the reference masks of
every date, tabulated per zone where the date was observed, and the change
between dates over the area observed on both."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import rasterio

from glaciermap.areas.area_spread import area_spread, change_spread, uncertain_areas
from glaciermap.areas.areas import MaskEntry, area_change_table, area_table
from glaciermap.areas.change_figure import change_figure
from glaciermap.io.outlines import read_outlines
from glaciermap.runs import parse_label
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)


def write_area_tables(
    maps: Sequence[Mapping[str, str]],
    reference: Mapping[str, str | Path],
    date_order: Sequence[str],
    areas_path: str | Path,
    change_path: str | Path,
    *,
    validity: Mapping[str, str | Path] | None = None,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
    uncertainty_threshold: float = 0.2,
) -> None:
    """Rule ``maps_areas``: per date and zone, the observed, unobserved and glacier
    area of the predicted maps and of the reference masks ({date: mask}), and the
    change between consecutive dates over the area observed on both.

    ``maps`` holds one record per run and date: ``run``, ``date``, ``mask`` and
    optionally ``outlines`` (its outlines.gpkg), which adds rows of source
    ``outlines`` over the whole scene: the predicted area without the specks
    below ``min_area_km2``. ``validity`` maps each date to
    ``results/validity/{date}.tif``; a date without one counts as fully observed.
    A seed ensemble's record (run ``ensemble/...``) also names its ``members``
    (their runs) and its ``uncertainty`` raster: its rows get the members' spread
    and the area above ``uncertainty_threshold`` (:mod:`.area_spread`).
    """
    validity = dict(validity or {})
    entries = [
        MaskEntry(m["run"], parse_label(m["run"]).model, "predicted", m["date"], Path(m["mask"]))
        for m in maps
    ]
    entries += [
        MaskEntry("reference", "reference", "reference", date, Path(path))
        for date, path in reference.items()
    ]
    entries += [
        MaskEntry(m["run"], parse_label(m["run"]).model, "outlines", m["date"], Path(m["outlines"]))
        for m in maps
        if m.get("outlines")
    ]
    areas = area_table(
        entries, validity, regions_path=regions_path, glaciers=glaciers, block_size=block_size
    )
    change = area_change_table(
        entries,
        date_order,
        validity,
        regions_path=regions_path,
        glaciers=glaciers,
        block_size=block_size,
    )
    members = {m["run"]: list(m["members"]) for m in maps if m.get("members")}
    uncertain = [
        uncertain_areas(
            m["uncertainty"],
            validity.get(m["date"]),
            uncertainty_threshold,
            regions_path=regions_path,
            glaciers=glaciers,
            block_size=block_size,
        ).assign(run=m["run"], date=m["date"])
        for m in maps
        if m.get("uncertainty")
    ]
    areas = area_spread(areas, members, pd.concat(uncertain) if uncertain else None)
    change = change_spread(change, members)
    with atomic_path(areas_path) as areas_tmp, atomic_path(change_path) as change_tmp:
        areas.to_csv(areas_tmp, index=False, float_format="%.6f")
        change.to_csv(change_tmp, index=False, float_format="%.6f")
    log.info("%d area rows, %d change rows", len(areas), len(change))


def run_change_figure(
    scene: str | Path,
    masks: Sequence[str | Path],
    outlines: Sequence[str | Path],
    dates: Sequence[str],
    out: str | Path,
    run: str,
    validity: Sequence[str | Path] | None = None,
    uncertainty: Sequence[str | Path] | None = None,
    uncertainty_threshold: float = 0.2,
) -> None:
    """Rule ``maps_change_figure``: a run's (or seed ensemble's) first and last date over
    the last date's image, unobserved pixels greyed out, uncertain ones marked."""
    change_figure(
        scene,
        masks,
        dates,
        out,
        title=run,
        outlines=outlines or None,
        validity=validity,
        uncertainty=uncertainty or None,
        uncertainty_threshold=uncertainty_threshold,
    )


def reference_glaciers(
    outlines: Mapping[str, Any], acquired: str, crs_of: str | Path
) -> gpd.GeoDataFrame:
    """The configured reference outlines (``data.outlines``), one row per glacier id,
    nearest analysis to ``acquired`` (YYYY-MM-DD), in the CRS of raster ``crs_of``."""
    with rasterio.open(crs_of) as dataset:
        crs = dataset.crs
    return read_outlines(
        outlines["file"],
        dt.date.fromisoformat(acquired),
        crs,
        layer=outlines.get("layer"),
        fmt=outlines.get("format", "auto"),
        glaciers=outlines.get("glaciers"),
    )
