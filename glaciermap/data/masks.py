"""Glacier masks: outlines rasterized onto the exact scene grid."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
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


def rasterize_mask(outlines: gpd.GeoDataFrame, grid: Grid, nodata: np.ndarray) -> np.ndarray:
    """uint8 mask: 1 inside an outline (pixel centre), 0 outside, 255 where ``nodata``."""
    shapes = [
        (geom, GLACIER) for geom in outlines.geometry if geom is not None and not geom.is_empty
    ]
    mask = rasterize(
        shapes,
        out_shape=grid.shape,
        transform=grid.transform,
        fill=NOT_GLACIER,
        dtype=np.uint8,
    )
    mask[nodata] = NODATA
    return mask


def write_uint8(raster: np.ndarray, grid: Grid, path: str | Path, nodata: int | None) -> None:
    """Write a one-band uint8 GeoTIFF on ``grid``, atomically."""
    profile = geotiff_profile(grid, "uint8", nodata=nodata)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(raster, 1)
