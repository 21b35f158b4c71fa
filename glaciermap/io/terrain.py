"""Terrain channels from a DEM: ``elevation`` and ``slope`` on a scene's grid.

The DEM (``data.dem.file``: any GDAL raster, any CRS and resolution, e.g. a
Copernicus GLO-30 tile or a mosaic of them) is reprojected onto the scene grid
with bilinear resampling; its nodata (and NaN) stays nodata and spreads to the
pixels that interpolate from it. Slope is derived on that grid, once per grid:
central differences of the elevation over the pixel size in metres (a
geographic grid's degrees are turned into metres per row, on a sphere of the
mean Earth radius), ``atan(|grad z|)`` in degrees. At the grid's edges the
differences are one-sided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from glaciermap.errors import InputDataError
from glaciermap.io.grid import Grid, reproject_to_grid

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def dem_file(dem: Mapping[str, Any], base_dir: str | Path = ".") -> Path:
    """The DEM raster a ``data.dem`` block reads."""
    return Path(base_dir) / dem["file"]


def check_dem(dem: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """Open the DEM's header: readable, band present, georeferenced."""
    path = dem_file(dem, base_dir)
    band = int(dem.get("band", 1))
    try:
        with rasterio.open(path) as dataset:
            if band > dataset.count:
                raise InputDataError(
                    f"DEM {path} (config key 'data.dem.band') has {dataset.count} band(s), "
                    f"band {band} is missing"
                )
            if dataset.crs is None:
                raise InputDataError(f"DEM {path} (config key 'data.dem.file') has no CRS")
    except RasterioError as exc:
        raise InputDataError(f"cannot read DEM {path} (config key 'data.dem.file'): {exc}") from exc


def read_elevation(dem: Mapping[str, Any], target: Grid, base_dir: str | Path = ".") -> np.ndarray:
    """The DEM on ``target``: float32 (H, W) metres, NaN where it has no data."""
    check_dem(dem, base_dir)
    path = dem_file(dem, base_dir)
    band = int(dem.get("band", 1))
    try:
        with rasterio.open(path) as dataset:
            values = dataset.read(band, masked=True).astype(np.float32)
            source = Grid.of(dataset)
    except RasterioError as exc:
        raise InputDataError(f"cannot read DEM {path}: {exc}") from exc
    elevation = values.filled(np.nan)
    configured = dem.get("nodata")
    if configured is not None:
        elevation[values.data == configured] = np.nan
    return reproject_to_grid(elevation, source, target)


def pixel_size_m(grid: Grid) -> tuple[np.ndarray, float]:
    """(dx per row (H,), dy) of a north-up grid in metres.

    A projected grid's pixel size in its linear unit (times the unit's metres);
    a geographic grid's degrees at each row's latitude.
    """
    t = grid.transform
    if t.b != 0 or t.d != 0:
        raise InputDataError(f"slope needs a north-up grid, not {grid.describe()}")
    if grid.crs.is_geographic:
        rows = np.arange(grid.height) + 0.5
        latitude = np.radians(t.f + t.e * rows)
        metres_per_degree = math.pi / 180 * EARTH_RADIUS_M
        dx = abs(t.a) * metres_per_degree * np.cos(latitude)
        return dx, abs(t.e) * metres_per_degree
    _, factor = grid.crs.linear_units_factor
    return np.full(grid.height, abs(t.a) * factor), abs(t.e) * factor


def slope_degrees(elevation: np.ndarray, grid: Grid) -> np.ndarray:
    """Slope (H, W) float32 in degrees of ``elevation`` (metres) on ``grid``; NaN
    where the elevation or a neighbour used is NaN."""
    if min(elevation.shape) < 2:
        raise InputDataError(f"slope needs a grid of at least 2x2 pixels, not {grid.describe()}")
    dx, dy = pixel_size_m(grid)
    z = elevation.astype(np.float64)
    dz_row, dz_col = np.gradient(z)
    gradient = np.hypot(dz_col / dx[:, None], dz_row / dy)
    return np.degrees(np.arctan(gradient)).astype(np.float32)


def terrain_layers(
    dem: Mapping[str, Any], target: Grid, names: Sequence[str], base_dir: str | Path = "."
) -> dict[str, np.ndarray]:
    """The terrain channels ``names`` (elevation, slope) on ``target``."""
    elevation = read_elevation(dem, target, base_dir)
    layers = {"elevation": elevation}
    if "slope" in names:
        layers["slope"] = slope_degrees(elevation, target)
    return {name: layers[name] for name in names}
