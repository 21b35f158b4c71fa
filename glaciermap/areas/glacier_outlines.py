"""Per-glacier outlines: one feature per reference glacier that a map finds, plus one
per connected patch of unassigned ice (:mod:`glaciermap.areas.glaciers`).

A glacier's feature is the union of the map's observed glacier pixels in its
territory (a MultiPolygon when the ice is in several pieces, with holes for
rock inside); its ``area_km2`` is the sum of those pixels, so the features add
up to the per-glacier table exactly, and ``perimeter_km`` is the length of
every ring (outer and inner) along the pixel edges. Unassigned patches (pixels
joined through their edges) smaller than ``min_area_km2`` are left out of the
outlines as specks; the tables still count them.

``smoothing`` > 0 rounds the staircase of pixel edges by that many rounds of
Chaikin's corner cutting (each cuts every corner at a quarter of its edges, the
edges first split into pixel-long segments);
the geometry's area then moves by a fraction of a percent (README "Per
glacier"), while ``area_km2`` and ``perimeter_km`` stay those of the pixels.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.areas.glaciers import UNASSIGNED, UNASSIGNED_ID, GlacierGrid, partition
from glaciermap.inference.vectorize import in_projected_metres

LAYER = "glaciers"
# 4-connectivity, as the outlines of glaciermap.inference.vectorize
EDGES = ndimage.generate_binary_structure(2, 1)


def perimeters_km(geometries: gpd.GeoSeries) -> np.ndarray:
    """Length of every ring of each geometry in km (NaN without a CRS)."""
    projected = in_projected_metres(geometries)
    if projected is None:
        return np.full(len(geometries), np.nan)
    lines, metres = projected
    return lines.length.to_numpy() * metres / 1e3


def glacier_features(
    grid: GlacierGrid,
    mask: np.ndarray,
    observed: np.ndarray,
    *,
    probability: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    min_area_km2: float = 0.0,
    smoothing: int = 0,
) -> gpd.GeoDataFrame:
    """Features with ``glacier_id``, ``name``, ``kind`` (glacier or unassigned),
    ``area_km2``, ``perimeter_km``, ``mean_probability``, ``mean_uncertainty``."""
    labels = partition(mask, observed, grid.territory)
    patches, count = ndimage.label(labels == UNASSIGNED, structure=EDGES)
    features = np.where(labels > 0, labels, 0)
    features = np.where(patches > 0, patches + grid.count, features).astype(np.int32)
    total = grid.count + count
    weights = np.broadcast_to(grid.pixel_km2, labels.shape)
    inside = features > 0
    area = np.bincount(features[inside], weights[inside], minlength=total + 1)
    pixels = np.bincount(features[inside], minlength=total + 1)

    def mean(values: np.ndarray | None) -> np.ndarray:
        if values is None:
            return np.full(total + 1, np.nan)
        sums = np.bincount(features[inside], np.nan_to_num(values[inside]), minlength=total + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pixels > 0, sums / np.maximum(pixels, 1), np.nan)

    pieces: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(
        features, mask=inside, connectivity=4, transform=grid.transform
    ):
        polygon = shape(geom)
        # GDAL may write a ring touching itself instead of a hole touching the shell.
        pieces.setdefault(int(value), []).append(
            polygon if polygon.is_valid else shapely.make_valid(polygon)
        )
    values = sorted(pieces)
    geometries = [_multipolygon(shapely.union_all(pieces[v])) for v in values]
    probabilities, uncertainties = mean(probability), mean(uncertainty)
    ids = [
        grid.glaciers["glacier_id"].iloc[v - 1] if v <= grid.count else UNASSIGNED_ID
        for v in values
    ]
    names = [grid.glaciers["name"].iloc[v - 1] if v <= grid.count else pd.NA for v in values]
    frame = gpd.GeoDataFrame(
        {
            "glacier_id": ids,
            "name": pd.Series(names, dtype="string"),
            "kind": ["glacier" if v <= grid.count else "unassigned" for v in values],
            "area_km2": area[values],
            "mean_probability": probabilities[values],
            "mean_uncertainty": uncertainties[values],
        },
        geometry=gpd.GeoSeries(geometries, crs=grid.crs),
        crs=grid.crs,
    )
    frame.insert(4, "perimeter_km", perimeters_km(frame.geometry))
    speck = (frame["kind"] == "unassigned") & (frame["area_km2"] < min_area_km2)
    frame = frame[~speck].reset_index(drop=True)
    if smoothing > 0:
        pixel = min(abs(grid.transform.a), abs(grid.transform.e))
        frame.geometry = [smooth(geometry, smoothing, pixel) for geometry in frame.geometry]
    return frame


def chaikin(ring: np.ndarray, rounds: int) -> np.ndarray:
    """A closed ring ((n + 1, 2), first point repeated) after ``rounds`` of corner cutting."""
    points = ring[:-1]
    for _ in range(rounds):
        following = np.roll(points, -1, axis=0)
        cut = np.empty((2 * len(points), 2))
        cut[0::2] = 0.75 * points + 0.25 * following
        cut[1::2] = 0.25 * points + 0.75 * following
        points = cut
    return np.vstack([points, points[:1]])


def smooth(geometry: shapely.MultiPolygon, rounds: int, pixel: float) -> shapely.MultiPolygon:
    """Every ring of ``geometry`` cut ``rounds`` times (repaired where rings then touch).

    Rings are first split into segments of one ``pixel``, so that a corner is cut by
    a quarter of a pixel at most, wherever it lies: a long straight edge keeps its
    corners, a staircase becomes its diagonal."""
    polygons = []
    for polygon in shapely.get_parts(shapely.segmentize(geometry, pixel)):
        shell = chaikin(np.asarray(polygon.exterior.coords), rounds)
        holes = [chaikin(np.asarray(ring.coords), rounds) for ring in polygon.interiors]
        polygons.append(shapely.make_valid(shapely.Polygon(shell, holes)))
    return _multipolygon(shapely.union_all(polygons))


def _multipolygon(geometry: shapely.Geometry) -> shapely.MultiPolygon:
    """Every polygon of ``geometry`` as one MultiPolygon (lines and points dropped)."""
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if isinstance(part, shapely.Polygon | shapely.MultiPolygon)
    ]
    polygons = [p for part in parts for p in shapely.get_parts(part)]
    return shapely.MultiPolygon(polygons)
