"""The workflow's area tables and change figure (rules ``maps_areas`` and
``maps_change_figure``): the final runs' masks and the reference masks of
every date, tabulated per zone, and the change between dates."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import rasterio

from glaciermap.inference.areas import AREA_COLUMNS, MaskEntry, area_change, area_table
from glaciermap.inference.change_figure import change_figure
from glaciermap.inference.vectorize import outline_area_km2
from glaciermap.io.outlines import read_outlines
from glaciermap.runs import RunKey
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)


def write_area_tables(
    maps: Sequence[Mapping[str, str]],
    reference: Mapping[str, str | Path],
    date_order: Sequence[str],
    areas_path: str | Path,
    change_path: str | Path,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> None:
    """Rule ``maps_areas``: area per date of the predicted maps and of the reference
    masks ({date: mask}) per zone, and their change between consecutive dates.

    ``maps`` holds one record per run and date: ``run``, ``date``, ``mask`` and
    optionally ``outlines`` (its outlines.gpkg), which adds a row of source
    ``outlines``: the summed area of the vector outlines over the scene, i.e.
    the predicted area without the specks below ``min_area_km2``.
    """
    entries = [
        MaskEntry(m["run"], RunKey.parse(m["run"]).model, "predicted", m["date"], Path(m["mask"]))
        for m in maps
    ]
    entries += [
        MaskEntry("reference", "reference", "reference", date, Path(path))
        for date, path in reference.items()
    ]
    areas = area_table(entries, regions_path=regions_path, glaciers=glaciers, block_size=block_size)
    outline_rows = [
        (m["run"], RunKey.parse(m["run"]).model, "outlines", m["date"], "scene", "all",
         outline_area_km2(m["outlines"]))
        for m in maps
        if m.get("outlines")
    ]  # fmt: skip
    if outline_rows:
        areas = pd.concat(
            [areas, pd.DataFrame(outline_rows, columns=AREA_COLUMNS)], ignore_index=True
        )
    change = area_change(areas, date_order)
    with atomic_path(areas_path) as tmp:
        areas.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(change_path) as tmp:
        change.to_csv(tmp, index=False, float_format="%.6f")
    log.info("%d area rows, %d change rows", len(areas), len(change))


def run_change_figure(
    scene: str | Path,
    masks: Sequence[str | Path],
    outlines: Sequence[str | Path],
    dates: Sequence[str],
    out: str | Path,
    run: str,
) -> None:
    """Rule ``maps_change_figure``: a run's first and last date over the last date's image."""
    change_figure(scene, masks, dates, out, title=run, outlines=outlines)


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
