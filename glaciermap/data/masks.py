"""Glacier masks: outlines rasterized onto the exact scene grid.

Outlines are older than the image (GLIMS analyses are years apart), so the
pixels along a retreating front are uncertain labels. Two options of
``data.labels`` turn them into "no label" (:data:`~glaciermap.labels.NODATA`):
a band of ``boundary_ignore_px`` pixels on both sides of every outline
boundary, and the whole of every glacier whose outline is dated more than
``max_outline_age_years`` from the scene.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.features import rasterize
from scipy import ndimage
from shapely.geometry import box

from glaciermap.errors import InputDataError
from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER
from glaciermap.utils.atomic import atomic_path


def require_overlap(outlines: gpd.GeoDataFrame, grid: Grid, outline_file: str | Path) -> None:
    """Refuse outlines that miss the scene entirely (wrong file, area or CRS)."""
    if not outlines.intersects(box(*grid.bounds)).any():
        raise InputDataError(
            f"outline file {outline_file}: no outline overlaps the scene ({grid.describe()}); "
            "is it the right file or area, and does it declare the right CRS?"
        )


def _inside(outlines: gpd.GeoSeries, grid: Grid) -> np.ndarray:
    """bool (H, W): pixel centres inside any of the outlines."""
    shapes = [(geom, 1) for geom in outlines if geom is not None and not geom.is_empty]
    if not shapes:
        return np.zeros(grid.shape, bool)
    inside = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, dtype=np.uint8)
    return inside.astype(bool)


def stale_outlines(
    outlines: gpd.GeoDataFrame, acquired: dt.date, max_age_years: float | None
) -> pd.Series:
    """True for the glaciers whose outline ``date`` is more than ``max_age_years``
    from ``acquired``, or unknown; all False when ``max_age_years`` is None."""
    if max_age_years is None:
        return pd.Series(False, index=outlines.index)
    dates = pd.to_datetime(outlines["date"])
    age = (dates - pd.Timestamp(acquired)).abs() / pd.Timedelta(days=365.25)
    return dates.isna() | (age > max_age_years)


def boundary_band(glacier: np.ndarray, width_px: int) -> np.ndarray:
    """bool (H, W): pixels within ``width_px`` 8-neighbour steps of a pixel of the
    other label, i.e. ``width_px`` pixels on each side of every boundary."""
    if width_px == 0:
        return np.zeros(glacier.shape, bool)
    square = np.ones((3, 3), bool)
    near_glacier = ndimage.binary_dilation(glacier, square, iterations=width_px)
    near_other = ndimage.binary_dilation(~glacier, square, iterations=width_px)
    return near_glacier & near_other


def rasterize_mask(
    outlines: gpd.GeoDataFrame,
    grid: Grid,
    nodata: np.ndarray,
    *,
    ignore: pd.Series | None = None,
    boundary_ignore_px: int = 0,
) -> np.ndarray:
    """uint8 mask: 1 inside an outline (pixel centre), 0 outside, 255 (no label)
    where ``nodata``, inside the outlines flagged in ``ignore`` and within
    ``boundary_ignore_px`` pixels of any outline's boundary."""
    ignore = ignore if ignore is not None else pd.Series(False, index=outlines.index)
    kept = _inside(outlines.geometry[~ignore], grid)
    mask = np.where(kept, GLACIER, NOT_GLACIER).astype(np.uint8)
    if boundary_ignore_px:
        every = kept | _inside(outlines.geometry[ignore], grid)
        mask[boundary_band(every, boundary_ignore_px)] = NODATA
    if ignore.any():
        mask[_inside(outlines.geometry[ignore], grid)] = NODATA
    mask[nodata] = NODATA
    return mask


def write_uint8(raster: np.ndarray, grid: Grid, path: str | Path, nodata: int | None) -> None:
    """Write a one-band uint8 GeoTIFF on ``grid``, atomically."""
    profile = geotiff_profile(grid, "uint8", nodata=nodata)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(raster, 1)
