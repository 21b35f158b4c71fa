"""Split a glacier map among the reference glaciers: the per-glacier partition.

Every predicted glacier pixel that was observed goes to the nearest reference
outline (Euclidean distance in metres from the pixel centre to the nearest
pixel of the rasterised outline, :func:`scipy.ndimage.distance_transform_edt`),
if that outline lies within ``max_distance_m``; a pixel farther from every
outline is *unassigned* (new ice, seasonal snow, a glacier missing from the
inventory). Pixels inside an outline belong to it (distance 0). Which glacier a
pixel goes to depends only on where it lies, not on the date or the map, so one
*territory* raster per grid serves every map and date, and a glacier's change
between two dates is the change inside one fixed territory.

Known caveats: a tributary mapped as one ice body with its trunk is split at
the midline between their reference outlines, whatever the ice does there; a
glacier that split since its outline was drawn stays one glacier (one id, a
multipart outline); ice that advanced more than ``max_distance_m`` beyond its
outline, or that lies closer to a neighbour's outline, counts as unassigned or
as the neighbour's. Outlines that overlap give their shared pixels to the one
listed last in the outline file.

Everything here works on whole arrays of one grid: computing the territory
takes about 30 bytes per pixel at its peak (distances, nearest-pixel indices,
zones), about 3.5 GB for a 10980 x 10980 Sentinel-2 tile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio.features
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from glaciermap.labels import GLACIER

log = logging.getLogger(__name__)

UNASSIGNED = -1  # territory and feature value of pixels beyond every outline
OUTSIDE = 0  # feature value of pixels that are not (observed) glacier
UNASSIGNED_ID = "unassigned"


def pixel_size_m(transform: Affine, crs: CRS | None, shape: tuple[int, int]) -> tuple[float, float]:
    """(row, column) size of a pixel in metres; a geographic grid is measured on its
    ellipsoid at the grid's centre, a grid without CRS counts pixels as 1 m."""
    if crs is None:
        log.warning("no CRS: distances to the outlines are measured in pixels")
        return (1.0, 1.0)
    proj = pyproj.CRS.from_wkt(crs.to_wkt())
    if not proj.is_geographic:
        metres = proj.axis_info[0].unit_conversion_factor
        return (abs(transform.e) * metres, abs(transform.a) * metres)
    geod = proj.get_geod()
    if geod is None:  # a geographic CRS always has an ellipsoid
        raise ValueError(f"{proj.name}: no ellipsoid to measure distances on")
    lon, lat = transform @ (shape[1] / 2, shape[0] / 2)
    east = geod.inv(lon, lat, lon + transform.a, lat)[2]
    north = geod.inv(lon, lat, lon, lat + transform.e)[2]
    return (abs(north), abs(east))


def rasterize_outlines(
    outlines: gpd.GeoDataFrame, shape: tuple[int, int], transform: Affine
) -> np.ndarray:
    """The outlines burnt into a grid: 1 + the outline's row number, 0 elsewhere
    (pixel centres inside the polygon; the numbering of the area tables' zones)."""
    if outlines.empty:
        return np.zeros(shape, np.int32)
    return rasterio.features.rasterize(
        ((geom, i + 1) for i, geom in enumerate(outlines.geometry)),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype="int32",
    )


def glacier_territory(
    zones: np.ndarray, max_distance_m: float, pixel_m: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """For every pixel, the zone (1..n) of the nearest outline pixel within
    ``max_distance_m``, else :data:`UNASSIGNED`. ``zones`` from
    :func:`rasterize_outlines`; ``pixel_m`` the (row, column) pixel size."""
    if not (zones > 0).any():
        return np.full(zones.shape, UNASSIGNED, np.int32)
    distance, (rows, cols) = ndimage.distance_transform_edt(
        zones == 0, sampling=pixel_m, return_indices=True
    )
    nearest = zones[rows, cols]
    return np.where(distance <= max_distance_m, nearest, UNASSIGNED).astype(np.int32)


def partition(mask: np.ndarray, observed: np.ndarray, territory: np.ndarray) -> np.ndarray:
    """The observed glacier pixels of ``mask`` labelled with their glacier's zone
    (1..n) or :data:`UNASSIGNED`; every other pixel :data:`OUTSIDE`."""
    glacier = (mask == GLACIER) & observed
    return np.where(glacier, territory, OUTSIDE).astype(np.int32)


@dataclass(frozen=True)
class GlacierGrid:
    """The reference glaciers on one grid: their ids and names (row i is zone i + 1),
    zones, territory and the area of a pixel in each row (km2, shape (H, 1))."""

    glaciers: pd.DataFrame  # glacier_id, name
    zones: np.ndarray
    territory: np.ndarray
    pixel_km2: np.ndarray
    transform: Affine
    crs: CRS | None
    max_distance_m: float

    @classmethod
    def build(
        cls,
        outlines: gpd.GeoDataFrame,
        shape: tuple[int, int],
        transform: Affine,
        crs: CRS | None,
        max_distance_m: float,
    ) -> GlacierGrid:
        """``outlines`` (columns ``glacier_id``, optionally ``name``) in the grid's CRS;
        outlines without a pixel on the grid (a regional inventory holds many) are
        left out."""
        from glaciermap.areas.areas import row_pixel_areas_km2

        zones = rasterize_outlines(outlines, shape, transform)
        on_grid = np.bincount(zones.ravel(), minlength=len(outlines) + 1)[1:] > 0
        if not on_grid.all():
            renumber = np.zeros(len(outlines) + 1, np.int32)
            renumber[1:][on_grid] = np.arange(1, on_grid.sum() + 1, dtype=np.int32)
            zones = renumber[zones]
            outlines = outlines[on_grid]
        territory = glacier_territory(zones, max_distance_m, pixel_size_m(transform, crs, shape))
        names = outlines["name"] if "name" in outlines else pd.Series(pd.NA, index=outlines.index)
        glaciers = pd.DataFrame(
            {
                "glacier_id": outlines["glacier_id"].astype(str).to_numpy(),
                "name": names.to_numpy(),
            }
        )
        pixel_km2 = row_pixel_areas_km2(transform, crs, shape[0])[:, None]
        return cls(glaciers, zones, territory, pixel_km2, transform, crs, max_distance_m)

    @property
    def count(self) -> int:
        return len(self.glaciers)

    def sums(self, labels: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``values`` (default: pixel area, km2) per zone 0..n of ``labels``
        (values <= 0 are left out)."""
        weights = np.broadcast_to(self.pixel_km2, labels.shape) if values is None else values
        inside = labels > 0
        return np.bincount(labels[inside], weights[inside], minlength=self.count + 1)

    def reference_km2(self, where: np.ndarray | None = None) -> np.ndarray:
        """Reference area per glacier (zone 1..n), optionally only over ``where``."""
        zones = self.zones if where is None else np.where(where, self.zones, 0)
        return self.sums(zones)[1:]


def _mean(grid: GlacierGrid, labels: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    """Mean of ``values`` over the pixels of each zone 1..n (NaN without values or pixels)."""
    if values is None:
        return np.full(grid.count, np.nan)
    counts = grid.sums(labels, np.ones(labels.shape))[1:]
    totals = grid.sums(labels, np.nan_to_num(values.astype(np.float64)))[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / counts, np.nan)


def glacier_areas(
    grid: GlacierGrid,
    mask: np.ndarray,
    observed: np.ndarray,
    probability: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per reference glacier and one ``unassigned`` row: ``reference_km2``,
    ``observed_fraction`` (observed share of the reference area), ``area_km2`` (its
    observed glacier pixels), ``mean_probability`` and ``mean_uncertainty`` over them.

    The rows' ``area_km2`` sum to the map's observed glacier area over the grid.
    """
    labels = partition(mask, observed, grid.territory)
    reference = grid.reference_km2()
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(reference > 0, grid.reference_km2(observed) / reference, np.nan)
    unassigned = labels == UNASSIGNED
    weights = np.broadcast_to(grid.pixel_km2, labels.shape)
    rows = grid.glaciers.assign(
        reference_km2=reference,
        observed_fraction=fraction,
        area_km2=grid.sums(labels)[1:],
        mean_probability=_mean(grid, labels, probability),
        mean_uncertainty=_mean(grid, labels, uncertainty),
    )
    extra = {
        "glacier_id": UNASSIGNED_ID,
        "name": pd.NA,
        "reference_km2": np.nan,
        "observed_fraction": np.nan,
        "area_km2": float(weights[unassigned].sum()),
        "mean_probability": _masked_mean(probability, unassigned),
        "mean_uncertainty": _masked_mean(uncertainty, unassigned),
    }
    return pd.concat([rows, pd.DataFrame([extra])], ignore_index=True)


def _masked_mean(values: np.ndarray | None, where: np.ndarray) -> float:
    if values is None or not where.any():
        return float("nan")
    return float(np.nanmean(values[where]))


def glacier_change(
    grid: GlacierGrid,
    masks: tuple[np.ndarray, np.ndarray],
    observed: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    """Per glacier (and ``unassigned``) between two dates, over the pixels observed on
    both: ``common_observed_fraction`` (share of the reference area observed on both),
    ``area_from_km2``, ``area_to_km2`` and ``change_km2``."""
    common = observed[0] & observed[1]
    before, after = (partition(mask, common, grid.territory) for mask in masks)
    reference = grid.reference_km2()
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(reference > 0, grid.reference_km2(common) / reference, np.nan)
    weights = np.broadcast_to(grid.pixel_km2, common.shape)
    table = grid.glaciers.assign(
        reference_km2=reference,
        common_observed_fraction=fraction,
        area_from_km2=grid.sums(before)[1:],
        area_to_km2=grid.sums(after)[1:],
    )
    extra = {
        "glacier_id": UNASSIGNED_ID,
        "name": pd.NA,
        "reference_km2": np.nan,
        "common_observed_fraction": np.nan,
        "area_from_km2": float(weights[before == UNASSIGNED].sum()),
        "area_to_km2": float(weights[after == UNASSIGNED].sum()),
    }
    table = pd.concat([table, pd.DataFrame([extra])], ignore_index=True)
    table["change_km2"] = table["area_to_km2"] - table["area_from_km2"]
    return table
