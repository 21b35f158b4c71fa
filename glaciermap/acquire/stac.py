"""One Sentinel-2 L2A scene per date label from a STAC API.

Search the collection over the area in the label's window, keep the items under
the cloud limit, pick the best (covers the area, least cloudy, nearest to the
window's middle), and read only the area of its blue, green, red and NIR COGs
through GDAL's HTTP range requests. The scene is written on the common grid of
:mod:`glaciermap.acquire.grid` as float32 reflectance (DN + offset) / 10000,
NaN where DN = 0 (no data), with the item's identity in the GeoTIFF tags.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import rasterio
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import box, shape

from glaciermap.acquire.glims import OUTPUT_LAYER, select_glaciers
from glaciermap.acquire.grid import Grid, area_grid
from glaciermap.acquire.http import (
    DownloadError,
    check_reachable,
    gdal_http_options,
    vsicurl_path,
)
from glaciermap.acquire.settings import AcquireSettings, DateWindow
from glaciermap.bands import BANDS
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.scenes import write_scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """An item that fits the window and the cloud limit, with what ranks it."""

    item: pystac.Item
    cloud: float
    when: dt.datetime
    covers: bool

    def rank(self, middle: dt.datetime) -> tuple[bool, float, float, str]:
        # Items that cover the whole area first, then least cloud, then nearest the middle.
        return (
            not self.covers,
            self.cloud,
            abs((self.when - middle).total_seconds()),
            self.item.id,
        )


def search_items(
    settings: AcquireSettings, window: DateWindow, lonlat_bbox: tuple[float, ...]
) -> list[pystac.Item]:
    """All items of the collection over the box in the window (network errors -> DownloadError)."""
    try:
        stac_io = StacApiIO(timeout=settings.timeout_s, max_retries=settings.retries)
        client = Client.open(settings.endpoint, stac_io=stac_io)
        search = client.search(
            collections=[settings.collection],
            bbox=list(lonlat_bbox),
            datetime=window.interval,
            limit=100,
        )
        items = list(search.items())
    except (APIError, requests.RequestException, pystac.STACError, ValueError) as exc:
        raise DownloadError(f"STAC search at {settings.endpoint} failed: {exc}") from exc
    log.info(
        "%d items at %s for '%s' (%s)", len(items), settings.endpoint, window.label, window.interval
    )
    return items


def pick_item(
    items: list[pystac.Item],
    window: DateWindow,
    max_cloud: float,
    lonlat_bbox: tuple[float, ...],
) -> pystac.Item | None:
    """The least cloudy item of the window (ties: nearest to its middle), or None.

    Filters here, not only in the query, so that APIs without the query
    extension and static catalogues give the same answer.
    """
    area = box(*lonlat_bbox)
    choices = []
    for item in items:
        cloud = item.properties.get("eo:cloud_cover")
        when = item.datetime
        if when is not None and when.tzinfo is None:  # STAC datetimes are UTC
            when = when.replace(tzinfo=dt.UTC)
        if cloud is None or when is None or not window.contains(when) or cloud > max_cloud:
            continue
        covers = item.geometry is not None and shape(item.geometry).covers(area)
        choices.append(Choice(item, float(cloud), when, covers))
    if not choices:
        return None
    return min(choices, key=lambda c: c.rank(window.middle)).item


def processing_baseline(item: pystac.Item) -> str | None:
    """``"05.09"`` from the item properties or, failing that, from the product name."""
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        if props.get(key):
            return str(props[key])
    for name in (props.get("s2:product_uri"), item.id):
        baseline = sentinel2.baseline_from_name(str(name or ""))
        if baseline:
            return baseline
    return None


def boa_offset(item: pystac.Item, setting: str | float) -> float:
    """The DN offset to add before dividing by 10000.

    ``setting`` "auto": -1000 for processing baseline >= 04.00, unless the
    catalogue says the COGs already have it applied (Earth Search's
    ``earthsearch:boa_offset_applied``); a number forces that offset.
    """
    if setting != "auto":
        return float(setting)
    if item.properties.get("earthsearch:boa_offset_applied") is True:
        return 0.0
    baseline = processing_baseline(item)
    if baseline is None:
        raise InputDataError(
            f"STAC item {item.id}: processing baseline unknown, so the L2A offset is too; "
            "set config key 'acquire.boa_offset' to the offset (e.g. -1000 or 0)"
        )
    return sentinel2.reflectance_offset(baseline)


def _aligned(src: rasterio.io.DatasetReader, grid: Grid) -> bool:
    """True when the grid is a window of the source's pixel grid (no resampling needed)."""
    s, g = src.transform, grid.transform
    if src.crs != grid.crs or (s.b, s.d, g.b, g.d) != (0, 0, 0, 0):
        return False
    if not (np.isclose(s.a, g.a) and np.isclose(s.e, g.e)):
        return False
    cols, rows = (g.c - s.c) / s.a, (g.f - s.f) / s.e
    return bool(np.isclose(cols, round(cols)) and np.isclose(rows, round(rows)))


def read_on_grid(path: str, grid: Grid) -> np.ndarray:
    """Band 1 of ``path`` on ``grid``, 0 (L2A no data) outside the source.

    On a matching grid only the window's blocks are read, unchanged; otherwise
    the source is warped with nearest neighbour, which keeps DNs as they are.
    """
    with rasterio.open(path) as src:
        if not _aligned(src, grid):
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.nearest,
                src_nodata=0,
                nodata=0,
            ) as vrt:
                return vrt.read(1)
        col0 = round((grid.transform.c - src.transform.c) / src.transform.a)
        row0 = round((grid.transform.f - src.transform.f) / src.transform.e)
        out = np.zeros((grid.height, grid.width), dtype=src.dtypes[0])
        c0, r0 = max(col0, 0), max(row0, 0)
        c1 = min(col0 + grid.width, src.width)
        r1 = min(row0 + grid.height, src.height)
        if c1 > c0 and r1 > r0:
            window = Window(c0, r0, c1 - c0, r1 - r0)
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = src.read(1, window=window)
        return out


def error_chain(exc: BaseException) -> str:
    """The messages of an exception and its causes (GDAL's first error is often the telling one)."""
    messages: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(messages) < 6:
        text = str(current)
        if text and text not in messages and not text.startswith("Read failed. See previous"):
            messages.append(text)
        current = current.__cause__ or current.__context__
    return "; ".join(reversed(messages))


def asset_href(item: pystac.Item, key: str) -> str:
    asset = item.assets.get(key)
    if asset is None:
        raise InputDataError(
            f"STAC item {item.id} has no asset '{key}' (config key 'acquire.assets'); "
            f"it has {sorted(item.assets)}"
        )
    return asset.get_absolute_href() or asset.href


def acquisition_grid(settings: AcquireSettings, outlines: str | Path | None = None) -> Grid:
    """The common grid; for an area given by glacier ids, from the acquired outlines."""
    glaciers = None
    if settings.area.glaciers:
        if outlines is None:
            raise ConfigError("config key 'acquire.aoi.glaciers': the outlines file is needed")
        try:
            all_outlines = gpd.read_file(outlines, layer=OUTPUT_LAYER)
        except Exception as exc:
            raise InputDataError(f"cannot read outlines {outlines}: {exc}") from exc
        glaciers = select_glaciers(all_outlines, settings.area.glaciers, str(outlines))
    return area_grid(settings.area, settings.resolution, settings.crs, glaciers)


def download_scene(
    settings: AcquireSettings,
    label: str,
    output: str | Path,
    outlines: str | Path | None = None,
) -> Path:
    """Search, pick and read the scene of date ``label`` and write it to ``output``."""
    window = settings.window(label)
    grid = acquisition_grid(settings, outlines)
    bbox = grid.lonlat_bbox()
    item = pick_item(search_items(settings, window, bbox), window, settings.max_cloud, bbox)
    if item is None:
        raise InputDataError(
            f"no item of '{settings.collection}' at {settings.endpoint} for date '{label}' "
            f"({window.start}..{window.end}) with cloud cover <= {settings.max_cloud}% "
            "(config keys 'acquire.dates', 'acquire.max_cloud')"
        )
    offset = boa_offset(item, settings.boa_offset)
    hrefs = {band: asset_href(item, settings.assets[band]) for band in BANDS}
    log.info(
        "date '%s': item %s, cloud %s%%, offset %g",
        label,
        item.id,
        item.properties.get("eo:cloud_cover"),
        offset,
    )
    dns = []
    options = gdal_http_options(settings.timeout_s, settings.retries)
    # A failed read must not be served from GDAL's in-process cache on a retry.
    options["CPL_VSIL_CURL_NON_CACHED"] = ":".join(vsicurl_path(h) for h in hrefs.values())
    with rasterio.Env(**options):
        for band in BANDS:
            try:
                path = vsicurl_path(hrefs[band])
                check_reachable(hrefs[band], settings.timeout_s, settings.retries)
                dns.append(read_on_grid(path, grid))
            except (RasterioError, DownloadError) as exc:
                raise DownloadError(
                    f"cannot read asset '{settings.assets[band]}' ({band}) of STAC item "
                    f"{item.id} at {hrefs[band]}: {error_chain(exc)}"
                ) from exc
    reflectance = np.stack([sentinel2.to_reflectance(dn, offset) for dn in dns])
    tags = {
        "stac_item_id": item.id,
        "stac_datetime": item.datetime.isoformat() if item.datetime else "",
        "eo_cloud_cover": str(item.properties.get("eo:cloud_cover")),
        "s2_processing_baseline": processing_baseline(item) or "unknown",
        "boa_offset": f"{offset:g}",
        "stac_endpoint": settings.endpoint,
        "stac_collection": settings.collection,
        "date_label": label,
        "date_window": f"{window.start}..{window.end}",
    }
    band_tags = [
        {"band": band, "sentinel2": sentinel2.BAND_IDS[band], "href": hrefs[band]} for band in BANDS
    ]
    write_scene(reflectance, grid, output, tags, band_tags)
    log.info("wrote %s (%d x %d)", output, grid.width, grid.height)
    return Path(output)
