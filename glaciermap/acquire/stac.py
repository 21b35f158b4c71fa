"""One Sentinel-2 L2A scene per date label from a STAC API, merged from the
items of one acquisition day.

Search the collection over the area in the label's window and keep the items
under the cloud limit that reach the area. Read each one's Scene
Classification (SCL, 20 m, onto the 10 m grid by nearest neighbour) over the
area only, and choose the set of items of one day that leaves the fewest
invalid pixels (cloud, shadow, defect, no data): several tiles or orbits of
one day together, not just the least cloudy item (:func:`choose_items`). Then
read the area of their band COGs (blue, green, red and NIR, and the others
``data.channels`` needs, e.g. SWIR: 20 m bands bilinearly onto the 10 m grid)
through GDAL's HTTP range requests and merge them, each pixel from the first
item of the set that sees it. The scene is written on the common grid of
:mod:`glaciermap.acquire.grid` as float32 reflectance (DN + offset) / 10000,
NaN where DN = 0 (no data), with every item's identity in the GeoTIFF tags;
the merged SCL goes to the date's ``validity.scl`` file, where the preparation
masks with it.

A DEM (``data.dem.collection``, e.g. Copernicus ``cop-dem-glo-30``) is read the
same way (:func:`download_dem`): every item of the collection over the area,
bilinearly onto the common grid, as float32 metres with NaN where none has data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from rasterio.features import rasterize
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
from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.scenes import write_scene
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """An item that fits the window and the cloud limit and reaches the area."""

    item: pystac.Item
    cloud: float
    when: dt.datetime

    @property
    def day(self) -> dt.date:
        """The acquisition day (UTC): the items of one day form one candidate set."""
        return self.when.astimezone(dt.UTC).date()


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


def candidates(
    items: list[pystac.Item],
    window: DateWindow,
    max_cloud: float,
    lonlat_bbox: tuple[float, ...],
) -> list[Choice]:
    """The items dated in the window, at most ``max_cloud`` % cloudy (item-wide
    ``eo:cloud_cover``), whose footprint reaches the area.

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
        if item.geometry is not None and not shape(item.geometry).intersects(area):
            continue
        choices.append(Choice(item, float(cloud), when))
    return choices


def choose_items(
    choices: Sequence[Choice], seen: Callable[[Choice], np.ndarray], middle: dt.datetime
) -> list[Choice]:
    """The set of items of one acquisition day that sees the most of the area.

    ``seen(choice)`` gives the item's valid pixels on the area's grid (data and,
    by its SCL, neither cloud, shadow nor defect). Per day, items join in order
    of how much they see while they add pixels no other item of the set sees;
    the day whose set leaves the fewest invalid pixels wins, then the least
    cloudy set, then the day nearest the window's middle. The set comes in that
    join order: the mosaic prefers its first items' pixels.
    """
    days: dict[dt.date, list[Choice]] = {}
    for choice in choices:
        days.setdefault(choice.day, []).append(choice)
    best: tuple[tuple, list[Choice]] | None = None
    for members in days.values():
        counts = {c.item.id: int(seen(c).sum()) for c in members}
        ordered = sorted(members, key=lambda c: (-counts[c.item.id], c.cloud, c.item.id))
        union = np.zeros_like(seen(ordered[0]), dtype=bool)
        chosen: list[Choice] = []
        for choice in ordered:
            valid = seen(choice)
            if chosen and not (valid & ~union).any():
                continue
            chosen.append(choice)
            union |= valid
        rank = (
            -int(union.sum()),
            float(np.mean([c.cloud for c in chosen])),
            abs((chosen[0].when - middle).total_seconds()),
            [c.item.id for c in chosen],
        )
        if best is None or rank < best[0]:
            best = (rank, chosen)
    return [] if best is None else best[1]


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


def read_on_grid(
    path: str,
    grid: Grid,
    resampling: Resampling = Resampling.nearest,
    nodata: float | None = 0,
) -> np.ndarray:
    """Band 1 of ``path`` on ``grid``, ``nodata`` (default 0, L2A no data) outside
    the source and where it has none (``nodata`` None: the file's own nodata, NaN
    in a float32 result).

    On a matching grid only the window's blocks are read, unchanged; otherwise
    the source is warped with ``resampling``: nearest neighbour keeps DNs and
    classes as they are, bilinear suits 20 m reflectance and elevations.
    """
    with rasterio.open(path) as src:
        as_float = nodata is None
        fill = np.nan if as_float else nodata
        if not _aligned(src, grid):
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                src_nodata=src.nodata if as_float else nodata,
                nodata=src.nodata if as_float else nodata,
            ) as vrt:
                if as_float:
                    return vrt.read(1, masked=True).astype(np.float32).filled(np.nan)
                return vrt.read(1)
        col0 = round((grid.transform.c - src.transform.c) / src.transform.a)
        row0 = round((grid.transform.f - src.transform.f) / src.transform.e)
        dtype = np.float32 if as_float else src.dtypes[0]
        out = np.full((grid.height, grid.width), fill, dtype=dtype)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1 = min(col0 + grid.width, src.width)
        r1 = min(row0 + grid.height, src.height)
        if c1 > c0 and r1 > r0:
            window = Window(c0, r0, c1 - c0, r1 - r0)
            if as_float:
                values = src.read(1, window=window, masked=True).astype(np.float32)
                block = values.filled(np.nan)
            else:
                block = src.read(1, window=window)
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = block
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


def asset_key(settings: AcquireSettings, band: str) -> str:
    """The STAC asset of ``band``: ``acquire.assets``, else the band's name (Earth
    Search v1 names its assets by eo:common_name: swir16, swir22, rededge1...)."""
    return settings.assets.get(band) or band


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


def _footprint(item: pystac.Item, grid: Grid) -> np.ndarray:
    """bool (H, W): the grid pixels inside the item's footprint (all without one)."""
    if item.geometry is None:
        return np.ones(grid.shape, bool)
    footprint = gpd.GeoSeries([shape(item.geometry)], crs="EPSG:4326").to_crs(grid.crs)
    return rasterize(
        [(footprint.iloc[0], 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8
    ).astype(bool)


class AssetReader:
    """Reads the assets of items on the common grid by HTTP range requests,
    turning every failure into a :class:`DownloadError` naming item, asset and URL."""

    def __init__(self, settings: AcquireSettings, grid: Grid) -> None:
        self.settings = settings
        self.grid = grid

    def read(
        self,
        item: pystac.Item,
        band: str,
        key: str | None = None,
        nodata: float | None = 0,
    ) -> np.ndarray:
        """Asset ``key`` (default: ``acquire.assets`` of ``band``, else the band's
        name) of ``item`` on the grid; 20 m bands and a DEM (``nodata`` None) bilinearly."""
        key = key or asset_key(self.settings, band)
        href = asset_href(item, key)
        bilinear = nodata is None or (
            band in sentinel2.BAND_IDS and band not in sentinel2.BANDS_10M
        )
        resampling = Resampling.bilinear if bilinear else Resampling.nearest
        options = gdal_http_options(self.settings.timeout_s, self.settings.retries)
        # A failed read must not be served from GDAL's in-process cache on a retry.
        options["CPL_VSIL_CURL_NON_CACHED"] = vsicurl_path(href)
        try:
            with rasterio.Env(**options):
                check_reachable(href, self.settings.timeout_s, self.settings.retries)
                return read_on_grid(vsicurl_path(href), self.grid, resampling, nodata)
        except (RasterioError, DownloadError) as exc:
            raise DownloadError(
                f"cannot read asset '{key}' ({band}) of STAC item {item.id} at {href}: "
                f"{error_chain(exc)}"
            ) from exc


@dataclass(frozen=True)
class MergedItems:
    """The chosen items read onto the grid and merged."""

    dns: np.ndarray  # uint16 (B, H, W) of the item each pixel comes from, 0 = no data
    reflectance: np.ndarray  # float32 (B, H, W)
    classes: np.ndarray | None  # uint8 (H, W) SCL of the same item, None without SCL
    used: dict[str, int]  # pixels taken from each item


def merge_items(
    chosen: Sequence[Choice],
    reader: AssetReader,
    classes: Mapping[str, np.ndarray],
    offsets: Mapping[str, float],
    invalid: Sequence[int],
    bands: Sequence[str] = BANDS,
) -> MergedItems:
    """Each pixel from the first item of ``chosen`` where it is valid (data in all
    ``bands``, SCL class not in ``invalid``), else from the first with data,
    whose SCL then says why it is invalid."""
    grid = reader.grid
    reflectance = np.full((len(bands), *grid.shape), np.nan, np.float32)
    dns = np.zeros((len(bands), *grid.shape), np.uint16)
    merged = np.zeros(grid.shape, np.uint8) if classes else None
    state = np.zeros(grid.shape, np.uint8)  # 0 nothing yet, 1 data (invalid), 2 valid
    used = {}
    for choice in chosen:
        item = choice.item
        item_dns = np.stack([reader.read(item, band) for band in bands])
        has_data = (item_dns != sentinel2.NODATA_DN).all(axis=0)
        valid = has_data
        if classes:
            valid = has_data & ~np.isin(classes[item.id], invalid)
        take = (valid & (state < 2)) | (has_data & (state == 0))
        values = np.stack([sentinel2.to_reflectance(dn, offsets[item.id]) for dn in item_dns])
        reflectance[:, take] = values[:, take]
        dns[:, take] = item_dns[:, take]
        if merged is not None:
            merged[take] = classes[item.id][take]
        state[take] = np.where(valid[take], 2, 1)
        used[item.id] = int(take.sum())
    return MergedItems(dns, reflectance, merged, used)


def write_classes(
    classes: np.ndarray, grid: Grid, path: str | Path, tags: Mapping[str, str]
) -> None:
    """Write the merged SCL (uint8 classes 0-11 on the 10 m grid) atomically."""
    profile = geotiff_profile(grid, "uint8", nodata=None)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(classes, 1)
        out.update_tags(**tags)
        out.update_tags(1, band="scl", sentinel2=sentinel2.SCL_BAND_ID)


def download_scene(
    settings: AcquireSettings,
    label: str,
    output: str | Path,
    outlines: str | Path | None = None,
    scl_output: str | Path | None = None,
    invalid_classes: Sequence[int] | None = None,
    bands: Sequence[str] = BANDS,
) -> Path:
    """Search the scene of date ``label``, choose its items, merge their ``bands``
    (the spectral bands ``data.channels`` needs, in that order) onto the common
    grid and write it to ``output`` (and the merged SCL to ``scl_output``).

    ``invalid_classes`` (default :data:`~glaciermap.io.sentinel2.INVALID_SCL_CLASSES`)
    are the SCL classes that do not count as seen.
    """
    window = settings.window(label)
    grid = acquisition_grid(settings, outlines)
    bbox = grid.lonlat_bbox()
    invalid = tuple(invalid_classes or sentinel2.INVALID_SCL_CLASSES)
    found = candidates(search_items(settings, window, bbox), window, settings.max_cloud, bbox)
    if not found:
        raise InputDataError(
            f"no item of '{settings.collection}' at {settings.endpoint} covers the area "
            f"({', '.join(f'{v:.4f}' for v in bbox)}) on date '{label}' "
            f"({window.start}..{window.end}) with cloud cover <= {settings.max_cloud}% "
            "(config keys 'acquire.aoi', 'acquire.dates', 'acquire.max_cloud')"
        )
    reader = AssetReader(settings, grid)
    scl_asset = settings.assets.get("scl")
    if scl_output is not None and not scl_asset:
        raise ConfigError(
            f"config key 'acquire.assets.scl': null, so the SCL of date '{label}' that "
            f"config key 'data.scenes.{label}.validity.scl' names cannot be downloaded"
        )
    classes: dict[str, np.ndarray] = {}
    seen: dict[str, np.ndarray] = {}
    for choice in found:
        if scl_asset:
            classes[choice.item.id] = reader.read(choice.item, "scl")
            seen[choice.item.id] = ~np.isin(classes[choice.item.id], invalid)
        else:
            seen[choice.item.id] = _footprint(choice.item, grid)
    chosen = choose_items(found, lambda c: seen[c.item.id], window.middle)
    if not any(seen[c.item.id].any() for c in chosen):
        raise InputDataError(
            f"no item of '{settings.collection}' for date '{label}' ({window.start}.."
            f"{window.end}) sees any pixel of the area: "
            + (
                "all cloud, shadow or no data by their SCL"
                if scl_asset
                else "no footprint reaches it"
            )
            + " (config keys 'acquire.aoi', 'acquire.dates', 'acquire.max_cloud')"
        )
    offsets = {c.item.id: boa_offset(c.item, settings.boa_offset) for c in chosen}
    for choice in chosen:
        log.info(
            "date '%s': item %s, cloud %s%%, %.1f%% of the area seen, offset %g",
            label,
            choice.item.id,
            choice.item.properties.get("eo:cloud_cover"),
            100 * seen[choice.item.id].mean(),
            offsets[choice.item.id],
        )
    merged = merge_items(chosen, reader, classes, offsets, invalid, bands)
    first = chosen[0].item

    def joined(values: Iterable[object]) -> str:
        return ",".join(str(v) for v in values)

    tags = {
        "stac_item_id": first.id,
        "stac_item_ids": joined(c.item.id for c in chosen),
        "stac_datetime": first.datetime.isoformat() if first.datetime else "",
        "stac_datetimes": joined(c.when.isoformat() for c in chosen),
        "eo_cloud_cover": str(first.properties.get("eo:cloud_cover")),
        "eo_cloud_covers": joined(c.cloud for c in chosen),
        "s2_processing_baseline": processing_baseline(first) or "unknown",
        "s2_processing_baselines": joined(processing_baseline(c.item) or "unknown" for c in chosen),
        "boa_offset": f"{offsets[first.id]:g}",
        "boa_offsets": joined(f"{offsets[c.item.id]:g}" for c in chosen),
        "pixels_per_item": joined(merged.used[c.item.id] for c in chosen),
        "stac_endpoint": settings.endpoint,
        "stac_collection": settings.collection,
        "date_label": label,
        "date_window": f"{window.start}..{window.end}",
    }
    band_tags = [
        {
            "band": band,
            "sentinel2": sentinel2.BAND_IDS[band],  # type: ignore[index]
            "href": joined(asset_href(c.item, asset_key(settings, band)) for c in chosen),
        }
        for band in bands
    ]
    if scl_output is not None and merged.classes is not None:
        write_classes(merged.classes, grid, scl_output, tags)
    try:
        write_scene(merged.reflectance, grid, output, tags, band_tags, channels=bands)
    except BaseException:
        if scl_output is not None:
            Path(scl_output).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%d x %d) from %d item(s)", output, grid.width, grid.height, len(chosen))
    return Path(output)


def download_dem(
    settings: AcquireSettings,
    dem: Mapping[str, Any],
    output: str | Path,
    outlines: str | Path | None = None,
) -> Path:
    """The DEM of collection ``dem["collection"]`` (asset ``dem["asset"]``) over the
    area: every item that reaches it, read bilinearly onto the common grid, each
    pixel from the first item (in the catalogue's order) with data; float32
    metres, NaN where no item has data. Written atomically to ``output``."""
    grid = acquisition_grid(settings, outlines)
    bbox = grid.lonlat_bbox()
    collection, asset = dem["collection"], dem.get("asset", "data")
    try:
        stac_io = StacApiIO(timeout=settings.timeout_s, max_retries=settings.retries)
        client = Client.open(settings.endpoint, stac_io=stac_io)
        items = list(client.search(collections=[collection], bbox=list(bbox), limit=100).items())
    except (APIError, requests.RequestException, pystac.STACError, ValueError) as exc:
        raise DownloadError(
            f"STAC search of '{collection}' at {settings.endpoint} failed: {exc}"
        ) from exc
    area = box(*bbox)
    # Filtered here too: static catalogues answer a search with every item.
    items = [
        i
        for i in items
        if i.collection_id in (None, collection)
        and (i.geometry is None or shape(i.geometry).intersects(area))
    ]
    if not items:
        raise InputDataError(
            f"no item of '{collection}' at {settings.endpoint} covers the area "
            f"({', '.join(f'{v:.4f}' for v in bbox)}) (config keys 'data.dem.collection', "
            "'acquire.aoi')"
        )
    reader = AssetReader(settings, grid)
    elevation = np.full(grid.shape, np.nan, np.float32)
    for item in items:
        values = reader.read(item, "elevation", key=asset, nodata=None)
        take = np.isnan(elevation) & np.isfinite(values)
        elevation[take] = values[take]
    if not np.isfinite(elevation).any():
        raise InputDataError(f"the items of '{collection}' have no elevation over the area")
    profile = geotiff_profile(grid, "float32", nodata=float("nan"))
    tags = {
        "stac_item_ids": ",".join(item.id for item in items),
        "stac_endpoint": settings.endpoint,
        "stac_collection": collection,
    }
    with atomic_path(output) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(elevation, 1)
        out.update_tags(**tags)
        out.descriptions = ("elevation",)
    log.info("wrote DEM %s (%d x %d) from %d item(s)", output, grid.width, grid.height, len(items))
    return Path(output)
