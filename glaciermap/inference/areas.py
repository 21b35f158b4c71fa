"""Glacier area per date, by zone, and its change between dates.

A mask's glacier area is counted block by block (bounded memory) in zones:
the whole scene (``scene``/``all``), each region of ``results/regions.tif``
(``region``/``train``, ``val``, ``test``) and each glacier of the reference
outlines (``glacier``/its id). A glacier's zone is its reference outline, so
its predicted area is the glacier pixels inside that outline: retreat shows as
a loss, an advance beyond the reference outline is not counted.

Pixel areas are exact for projected CRSs and per row (on the ellipsoid) for
geographic ones; without a CRS the areas are NaN.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import rasterio.features
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from glaciermap.errors import InputDataError

log = logging.getLogger(__name__)

REGION_NAMES = {1: "train", 2: "val", 3: "test"}
AREA_COLUMNS = ["run", "model", "source", "date", "zone_type", "zone", "area_km2"]
CHANGE_COLUMNS = [
    "run",
    "model",
    "source",
    "zone_type",
    "zone",
    "date_from",
    "date_to",
    "area_from_km2",
    "area_to_km2",
    "change_km2",
    "change_pct",
]


def row_pixel_areas_km2(
    transform: rasterio.Affine, crs: rasterio.crs.CRS | None, height: int
) -> np.ndarray:
    """Area of one pixel in each row, km2 (NaN without a CRS)."""
    if crs is None:
        return np.full(height, np.nan)
    proj = pyproj.CRS.from_wkt(crs.to_wkt())
    if not proj.is_geographic:
        metres = proj.axis_info[0].unit_conversion_factor
        return np.full(height, abs(transform.determinant) * metres**2 / 1e6)
    geod = proj.get_geod()
    areas = np.empty(height)
    for row in range(height):
        corners = [transform @ (c, r) for c, r in ((0, row), (1, row), (1, row + 1), (0, row + 1))]
        lons, lats = zip(*corners, strict=True)
        areas[row] = abs(geod.polygon_area_perimeter(lons, lats)[0]) / 1e6
    return areas


def _open(path: str | Path, what: str) -> rasterio.DatasetReader:
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def zone_areas(
    mask_path: str | Path,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Glacier area (pixels == 1) of a mask in km2 per zone: columns zone_type, zone, area_km2.

    ``glaciers`` needs a ``glacier_id`` column and must be in the mask's CRS.
    """
    totals: dict[tuple[str, str], float] = {("scene", "all"): 0.0}
    for name in REGION_NAMES.values() if regions_path else ():
        totals[("region", name)] = 0.0
    ids: list[str] = []
    if glaciers is not None and len(glaciers):
        ids = [str(i) for i in glaciers["glacier_id"]]
        totals.update({("glacier", i): 0.0 for i in dict.fromkeys(ids)})
    with _open(mask_path, "mask") as mask_ds:
        regions_ds = _open(regions_path, "regions") if regions_path else None
        try:
            if regions_ds is not None and regions_ds.shape != mask_ds.shape:
                raise InputDataError(
                    f"regions {regions_path} has shape {regions_ds.shape}, mask {mask_path} "
                    f"has {mask_ds.shape}"
                )
            pixel_km2 = row_pixel_areas_km2(mask_ds.transform, mask_ds.crs, mask_ds.height)
            for row, col in itertools.product(
                range(0, mask_ds.height, block_size), range(0, mask_ds.width, block_size)
            ):
                window = Window(
                    col,
                    row,
                    min(block_size, mask_ds.width - col),
                    min(block_size, mask_ds.height - row),
                )
                glacier = mask_ds.read(1, window=window) == 1
                weights = np.where(glacier, pixel_km2[row : row + glacier.shape[0], None], 0.0)
                totals[("scene", "all")] += float(weights.sum())
                if regions_ds is not None:
                    zone = regions_ds.read(1, window=window).astype(np.int64)
                    sums = np.bincount(zone.ravel(), weights.ravel(), minlength=4)
                    for value, name in REGION_NAMES.items():
                        totals[("region", name)] += float(sums[value])
                if ids:
                    zone = rasterio.features.rasterize(
                        ((geom, i + 1) for i, geom in enumerate(glaciers.geometry)),
                        out_shape=glacier.shape,
                        transform=window_transform(window, mask_ds.transform),
                        fill=0,
                        dtype="int32",
                    )
                    sums = np.bincount(zone.ravel(), weights.ravel(), minlength=len(ids) + 1)
                    for i, glacier_id in enumerate(ids):
                        totals[("glacier", glacier_id)] += float(sums[i + 1])
        finally:
            if regions_ds is not None:
                regions_ds.close()
    return pd.DataFrame(
        [(kind, zone, area) for (kind, zone), area in totals.items()],
        columns=["zone_type", "zone", "area_km2"],
    )


@dataclass(frozen=True)
class MaskEntry:
    """One mask to tabulate: a run's prediction or a reference mask of one date."""

    run: str
    model: str
    source: str  # "predicted" | "reference"
    date: str
    path: Path


def area_table(
    entries: Iterable[MaskEntry],
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Long table of area per run, source, date and zone (columns ``AREA_COLUMNS``)."""
    frames = []
    for entry in entries:
        areas = zone_areas(
            entry.path, regions_path=regions_path, glaciers=glaciers, block_size=block_size
        )
        frames.append(
            areas.assign(run=entry.run, model=entry.model, source=entry.source, date=entry.date)
        )
    if not frames:
        return pd.DataFrame(columns=AREA_COLUMNS)
    return pd.concat(frames, ignore_index=True)[AREA_COLUMNS]


def area_change(areas: pd.DataFrame, date_order: Sequence[str]) -> pd.DataFrame:
    """Change between consecutive dates (in ``date_order``) for each run, source and zone.

    ``change_pct`` is relative to the earlier date's area (NaN when that is 0).
    With a single date the table is empty.
    """
    rank = {date: i for i, date in enumerate(date_order)}
    unknown = sorted(set(areas["date"]) - set(rank))
    if unknown:
        raise InputDataError(f"area table holds dates not in the date order: {unknown}")
    rows = []
    keys = ["run", "model", "source", "zone_type", "zone"]
    for key, group in areas.groupby(keys, sort=False):
        group = group.sort_values("date", key=lambda s: s.map(rank))
        dates, values = group["date"].tolist(), group["area_km2"].to_numpy(float)
        for i in range(len(dates) - 1):
            before, after = values[i], values[i + 1]
            change = after - before
            pct = 100.0 * change / before if before > 0 else np.nan
            rows.append((*key, dates[i], dates[i + 1], before, after, change, pct))
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)
