"""The one grid that every downloaded date is written on.

The grid depends only on the area and the config (not on the items found), so
each date can be downloaded by its own job and still land on the same pixels.
Its origin is a multiple of the resolution in a UTM zone, like the Sentinel-2
tile grids, so items of that zone are copied without resampling.
"""

from __future__ import annotations

import math

import geopandas as gpd
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from glaciermap.acquire.settings import AreaSpec
from glaciermap.errors import ConfigError
from glaciermap.io.grid import LONLAT, Grid


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS of a point (the zones Sentinel-2 tiles use)."""
    zone = min(60, int(math.floor((lon + 180.0) / 6.0)) + 1)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def snapped_grid(bounds: tuple[float, float, float, float], crs: CRS, resolution: float) -> Grid:
    """The smallest grid of ``resolution`` pixels, origin a multiple of it, covering ``bounds``."""
    xmin, ymin, xmax, ymax = bounds
    left = math.floor(xmin / resolution) * resolution
    right = math.ceil(xmax / resolution) * resolution
    bottom = math.floor(ymin / resolution) * resolution
    top = math.ceil(ymax / resolution) * resolution
    width = max(1, round((right - left) / resolution))
    height = max(1, round((top - bottom) / resolution))
    return Grid(crs, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)


def area_grid(
    area: AreaSpec,
    resolution: float,
    crs: str | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
) -> Grid:
    """The scene grid of the area: a lon/lat bbox, or the envelope of ``glaciers``.

    ``crs`` defaults to the UTM zone of the area's centre; ``area.buffer_m`` widens
    the area on every side.
    """
    if area.bbox is not None:
        lonlat = area.bbox
    else:
        if glaciers is None or glaciers.empty:
            raise ConfigError("config key 'acquire.aoi.glaciers': no outlines to define the area")
        lonlat = tuple(glaciers.to_crs(LONLAT).total_bounds)
    target = (
        CRS.from_user_input(crs)
        if crs
        else utm_crs((lonlat[0] + lonlat[2]) / 2, (lonlat[1] + lonlat[3]) / 2)
    )
    if area.bbox is not None:
        xmin, ymin, xmax, ymax = transform_bounds(LONLAT, target, *lonlat, densify_pts=21)
    else:
        assert glaciers is not None  # checked above: the area comes from the outlines
        xmin, ymin, xmax, ymax = glaciers.to_crs(target).total_bounds
    pad = area.buffer_m
    return snapped_grid((xmin - pad, ymin - pad, xmax + pad, ymax + pad), target, resolution)
