"""Glacier outlines from a mask: one polygon per connected glacier area.

Pixels are joined through their edges (4-connectivity), so that every polygon
is a simple shape: diagonal neighbours are separate glaciers. Holes (nunataks,
rock inside the ice) are kept; areas below ``min_area_km2`` are dropped as
specks. The area of each polygon is computed in km2 in an equal-area sense:
in the CRS's own units when it is projected, in the local UTM zone when it is
geographic, and left unknown (NaN, with a warning) without a CRS.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import shape

from glaciermap.errors import InputDataError
from glaciermap.inference.provenance import read_provenance
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)

LAYER = "outlines"
# GeoPackage 1.2, which every GDAL from 2.3 on reads without a warning (GDAL 3.7+
# writes 1.4 by default, and Debian 12's GDAL 3.6 warns that it may only partly
# support it); every GeoPackage the workflow writes uses it.
GPKG_OPTIONS = {"driver": "GPKG", "VERSION": "1.2"}
COLUMNS = ["area_km2", "date", "model", "run"]


def in_projected_metres(geometries: gpd.GeoSeries) -> tuple[gpd.GeoSeries, float] | None:
    """``geometries`` in a projected CRS (its UTM zone when geographic) and the metres
    per unit of that CRS; None without a CRS."""
    if geometries.crs is None:
        return None
    if geometries.crs.is_geographic:
        geometries = geometries.to_crs(geometries.estimate_utm_crs())
    return geometries, geometries.crs.axis_info[0].unit_conversion_factor


def polygon_areas_km2(outlines: gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry in km2; NaN when the series has no CRS."""
    projected = in_projected_metres(outlines)
    if projected is None:
        return np.full(len(outlines), np.nan)
    geometries, metres = projected
    return geometries.area.to_numpy() * metres**2 / 1e6


def mask_to_outlines(
    mask: np.ndarray,
    transform: rasterio.Affine,
    crs: rasterio.crs.CRS | None,
    *,
    min_area_km2: float = 0.0,
    date: str = "",
    model: str = "",
    run: str = "",
) -> gpd.GeoDataFrame:
    """Polygons of the pixels equal to 1 in ``mask`` (other values are background)."""
    glacier = mask == 1
    polygons = [
        shape(geom)
        for geom, _ in rasterio.features.shapes(
            glacier.astype(np.uint8), mask=glacier, connectivity=4, transform=transform
        )
    ]
    # GDAL may write a ring touching itself instead of a hole touching the shell.
    polygons = [p if p.is_valid else shapely.make_valid(p) for p in polygons]
    series = gpd.GeoSeries(polygons, crs=crs).explode(index_parts=False)
    series = series[series.geom_type == "Polygon"].reset_index(drop=True)
    areas = polygon_areas_km2(series)
    if np.isnan(areas).any() and len(series):
        log.warning("no CRS: outline areas in km2 are unknown and specks are not removed")
    keep = ~(areas < min_area_km2)  # NaN areas are kept
    outlines = gpd.GeoDataFrame(
        {
            "area_km2": areas[keep],
            "date": date,
            "model": model,
            "run": run,
        },
        geometry=series[keep].to_numpy(),
        crs=crs,
    )
    dropped = int((~keep).sum())
    if dropped:
        log.info("dropped %d specks below %g km2", dropped, min_area_km2)
    return outlines.sort_values("area_km2", ascending=False, ignore_index=True)


def read_first_band(
    path: str | Path, what: str = "mask"
) -> tuple[np.ndarray, rasterio.Affine, rasterio.crs.CRS | None, str | None]:
    """A map GeoTIFF's first band with its transform, CRS and band description;
    ``what`` names the file in the error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            return dataset.read(1), dataset.transform, dataset.crs, dataset.descriptions[0]


def write_outlines(
    outlines: gpd.GeoDataFrame, path: str | Path, metadata: Mapping[str, str] | None = None
) -> None:
    """Write a GeoPackage (layer ``outlines``) atomically, also when empty; ``metadata``
    (the mask's provenance) goes into the layer's metadata."""
    outlines = outlines[COLUMNS + ["geometry"]]
    if outlines.empty:
        outlines = gpd.GeoDataFrame(
            {c: pd.Series(dtype="float64" if c == "area_km2" else "str") for c in COLUMNS},
            geometry=gpd.GeoSeries([], crs=outlines.crs),
        )
    with atomic_path(path) as tmp:
        outlines.to_file(
            tmp,
            layer=LAYER,
            geometry_type="Polygon",
            layer_metadata=dict(metadata) if metadata else None,
            **GPKG_OPTIONS,
        )


def vectorize_mask_file(
    mask_path: str | Path,
    outlines_path: str | Path,
    *,
    min_area_km2: float,
    date: str,
    model: str,
    run: str,
) -> gpd.GeoDataFrame:
    """Read ``mask.tif``, vectorise it and write ``outlines.gpkg``; return the outlines."""
    mask, transform, crs, _ = read_first_band(mask_path)
    outlines = mask_to_outlines(
        mask, transform, crs, min_area_km2=min_area_km2, date=date, model=model, run=run
    )
    # The mask's provenance (checkpoints, threshold, scene) travels to its outlines.
    write_outlines(outlines, outlines_path, read_provenance(mask_path))
    log.info(
        "%d outlines, %.3f km2, written to %s",
        len(outlines),
        outlines.area_km2.sum(),
        outlines_path,
    )
    return outlines


def outline_area_km2(path: str | Path) -> float:
    """Summed ``area_km2`` of an outlines GeoPackage."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"outline file not found: {path}")
    return float(gpd.read_file(path, layer=LAYER, columns=["area_km2"]).area_km2.sum())
