"""The train and test regions of the config as pixels of the scene grid."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_bounds
from shapely.geometry import Polygon, box

from glaciermap.data.tiling import OUTSIDE, TEST, TRAIN
from glaciermap.errors import ConfigError
from glaciermap.io.grid import Grid


def region_box(
    region: Mapping[str, Any],
    name: str,
    grid: Grid,
    outlines: Callable[[], gpd.GeoDataFrame],
) -> Polygon:
    """The rectangle of one region in the grid CRS.

    ``outlines`` is called only for a glacier-defined region; it returns the
    outlines in the grid CRS with a ``glacier_id`` column.
    """
    key = f"data.regions.{name}"
    if "glaciers" in region:
        frame = outlines()
        chosen = frame[frame["glacier_id"].isin(region["glaciers"])]
        missing = sorted(set(region["glaciers"]) - set(chosen["glacier_id"]))
        if missing:
            raise ConfigError(
                f"config key '{key}.glaciers': {', '.join(missing)} not in the outlines"
            )
        bounds = tuple(chosen.total_bounds)
    else:
        crs = CRS.from_user_input(region["crs"]) if region.get("crs") else grid.crs
        bounds = transform_bounds(crs, grid.crs, *region["bbox"], densify_pts=21)
    xmin, ymin, xmax, ymax = bounds
    if not (xmin < xmax and ymin < ymax):
        raise ConfigError(f"config key '{key}': empty box {list(bounds)}")
    buffer = region.get("buffer_m", 0.0)
    return box(xmin - buffer, ymin - buffer, xmax + buffer, ymax + buffer)


def region_raster(
    regions: Mapping[str, Any], grid: Grid, outlines: Callable[[], gpd.GeoDataFrame]
) -> np.ndarray:
    """uint8 raster: TRAIN / TEST where a pixel centre lies in that region; test wins overlaps."""
    shapes = [
        (region_box(regions["train"], "train", grid, outlines), TRAIN),
        (region_box(regions["test"], "test", grid, outlines), TEST),  # burnt last: wins
    ]
    return rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=OUTSIDE, dtype=np.uint8
    )
