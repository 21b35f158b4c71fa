"""GLIMS glacier outlines for the area: from the GLIMS web feature service or a local file.

The output keeps every attribute of the source (``glac_id``, ``line_type``,
``anlys_id``, ``src_date`` ... for GLIMS; ``RGIId``, ``BgnDate`` ... for RGI) and
the source's CRS; geometries are cut to the lon/lat envelope of the scene grid.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import geopandas as gpd
import pyogrio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from glaciermap.acquire.grid import LONLAT, Grid, area_grid
from glaciermap.acquire.http import DownloadError, get_bytes
from glaciermap.acquire.settings import AcquireSettings
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.inference.vectorize import GPKG_OPTIONS
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)

# Glacier id columns of GLIMS downloads and RGI files, in order of preference.
ID_COLUMNS = ("glac_id", "RGIId", "GLIMSId")
OUTPUT_LAYER = "outlines"


def glacier_id_column(columns: list[str] | tuple[str, ...], source: str) -> str:
    for name in ID_COLUMNS:
        if name in columns:
            return name
    raise InputDataError(f"{source}: no glacier id column (one of {', '.join(ID_COLUMNS)})")


def select_glaciers(
    outlines: gpd.GeoDataFrame, ids: tuple[str, ...], source: str
) -> gpd.GeoDataFrame:
    """The outlines of ``ids``; every id must be present (GLIMS or RGI ids)."""
    hits = outlines.iloc[0:0]
    for column in (c for c in ID_COLUMNS if c in outlines.columns):
        hits = outlines[outlines[column].isin(ids)]
        if not hits.empty:
            break
    found = {v for c in ID_COLUMNS if c in hits.columns for v in hits[c]}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ConfigError(f"config key 'acquire.aoi.glaciers': not found in {source}: {missing}")
    return hits


def cut_to_area(outlines: gpd.GeoDataFrame, lonlat_bbox: tuple[float, ...]) -> gpd.GeoDataFrame:
    """Outlines clipped to a lon/lat box, in the outlines' own CRS, attributes kept."""
    area = gpd.GeoSeries([box(*lonlat_bbox)], crs=LONLAT)
    if outlines.crs is not None and not outlines.crs.equals(LONLAT):
        area = area.to_crs(outlines.crs)
    return gpd.clip(outlines, area, keep_geom_type=True).sort_index()


def fetch_wfs(
    settings: AcquireSettings,
    *,
    lonlat_bbox: tuple[float, ...] | None = None,
    ids: tuple[str, ...] | None = None,
) -> gpd.GeoDataFrame:
    """GLIMS outlines from the web feature service, by lon/lat box or by glacier id."""
    src = settings.outlines
    # WFS 1.0.0 keeps lon/lat axis order for EPSG:4326 (1.1.0 and 2.0.0 swap it).
    params = {
        "service": "WFS",
        "version": "1.0.0",
        "request": "GetFeature",
        "typeName": src.layer,
        "outputFormat": "application/json",
        "srsName": "EPSG:4326",
    }
    if lonlat_bbox is not None:
        params["bbox"] = ",".join(f"{v:.6f}" for v in lonlat_bbox)
    if ids is not None:
        quoted = ",".join("'" + i.replace("'", "''") + "'" for i in ids)
        params["CQL_FILTER"] = f"glac_id IN ({quoted})"
    body = get_bytes(src.url, params, settings.timeout_s, settings.retries)
    try:
        outlines = gpd.read_file(io.BytesIO(body))
    except Exception as exc:  # pyogrio raises several types for unreadable bodies
        raise DownloadError(f"the answer of {src.url} is not GeoJSON outlines: {exc}") from exc
    if outlines.crs is None:
        outlines = outlines.set_crs(LONLAT)
    log.info("%d outline features from %s", len(outlines), src.url)
    return outlines


def read_file_outlines(
    path: str | Path,
    *,
    lonlat_bbox: tuple[float, ...] | None = None,
    ids: tuple[str, ...] | None = None,
) -> gpd.GeoDataFrame:
    """Outlines from a local GLIMS/RGI file, read only for the box or the ids."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config key 'acquire.outlines.file': file not found: {path}")
    try:
        info = pyogrio.read_info(path)
        if ids is not None:
            column = glacier_id_column(tuple(info["fields"]), str(path))
            quoted = ",".join("'" + i.replace("'", "''") + "'" for i in ids)
            return gpd.read_file(path, where=f"{column} IN ({quoted})")
        # Read only the features in the box, given in the file's own CRS.
        file_crs = info.get("crs")
        box_in_file = (
            transform_bounds(LONLAT, file_crs, *lonlat_bbox, densify_pts=21)
            if lonlat_bbox is not None and file_crs
            else lonlat_bbox
        )
        outlines = gpd.read_file(path, bbox=box_in_file)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"cannot read outlines {path}: {exc}") from exc
    if lonlat_bbox is not None:
        outlines = cut_to_area(outlines, lonlat_bbox)
    return outlines


def outlines_grid(settings: AcquireSettings, glaciers: gpd.GeoDataFrame | None = None) -> Grid:
    return area_grid(settings.area, settings.resolution, settings.crs, glaciers)


def acquire_outlines(settings: AcquireSettings, output: str | Path) -> Path:
    """Write the outlines of the area to ``output`` (GeoPackage, layer ``outlines``)."""
    src = settings.outlines
    ids = settings.area.glaciers
    source_name = src.url if src.source == "glims_wfs" else str(src.file)

    def fetch(
        lonlat_bbox: tuple[float, ...] | None = None, ids: tuple[str, ...] | None = None
    ) -> gpd.GeoDataFrame:
        if src.source == "glims_wfs":
            return fetch_wfs(settings, lonlat_bbox=lonlat_bbox, ids=ids)
        assert src.file is not None  # AcquireSettings.from_config requires it for source 'file'
        return read_file_outlines(src.file, lonlat_bbox=lonlat_bbox, ids=ids)

    glaciers = select_glaciers(fetch(ids=ids), ids, source_name) if ids else None
    grid = outlines_grid(settings, glaciers)
    bbox = grid.lonlat_bbox()
    outlines = cut_to_area(fetch(lonlat_bbox=bbox), bbox)
    if outlines.empty:
        raise InputDataError(f"{source_name}: no glacier outlines in the area {bbox}")
    output = Path(output)
    with atomic_path(output) as tmp:
        outlines.to_file(tmp, layer=OUTPUT_LAYER, **GPKG_OPTIONS)
    log.info("wrote %d outlines to %s", len(outlines), output)
    return output
