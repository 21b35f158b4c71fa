"""Glacier area per date, by zone, where the date was seen, and its change.

Areas are summed block by block (bounded memory) in zones: the whole scene
(``scene``/``all``), each region of ``results/regions.tif`` (``region``/
``train``, ``val``, ``test``) and each glacier of the reference outlines
(``glacier``/its id). A glacier's zone is its reference outline, so its
predicted area is the glacier pixels inside that outline: retreat shows as a
loss, an advance beyond the reference outline is not counted.

A date's validity raster (``results/validity/{date}.tif``) says which pixels
were observed: per date and zone the table gives the observed area, the
unobserved area (cloud, shadow, defect or no data) and the glacier area seen.
The change between two dates is measured only over the pixels observed on
both, and the table states that common area: a cloud on either date removes
its pixels from both sides of the comparison.

Pixel areas are exact for projected CRSs and per row (on the ellipsoid) for
geographic ones; without a CRS the areas are NaN.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import rasterio.features
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from glaciermap.errors import InputDataError
from glaciermap.io.validity import VALID
from glaciermap.labels import GLACIER

log = logging.getLogger(__name__)

REGION_NAMES = {1: "train", 2: "val", 3: "test"}
AREA_COLUMNS = [
    "run", "model", "source", "date", "zone_type", "zone",
    "area_km2", "observed_km2", "unobserved_km2",
]  # fmt: skip
CHANGE_COLUMNS = [
    "run", "model", "source", "zone_type", "zone", "date_from", "date_to",
    "common_observed_km2", "area_from_km2", "area_to_km2", "change_km2", "change_pct",
]  # fmt: skip
Source = Literal["predicted", "outlines", "reference"]


def row_pixel_areas_km2(
    transform: rasterio.Affine, crs: rasterio.crs.CRS | None, height: int
) -> np.ndarray:
    """Area of one pixel in each row, km2 (NaN without a CRS)."""
    if crs is None:
        return np.full(height, np.nan)
    proj = pyproj.CRS.from_wkt(crs.to_wkt())
    if not proj.is_geographic:
        metres = proj.axis_info[0].unit_conversion_factor
        return np.full(height, abs(transform.determinant) * metres**2 / 1e6)
    geod = proj.get_geod()
    if geod is None:  # a geographic CRS always has an ellipsoid
        raise ValueError(f"{proj.name}: no ellipsoid to measure areas on")
    areas = np.empty(height)
    for row in range(height):
        corners = [transform @ (c, r) for c, r in ((0, row), (1, row), (1, row + 1), (0, row + 1))]
        lons, lats = zip(*corners, strict=True)
        areas[row] = abs(geod.polygon_area_perimeter(lons, lats)[0]) / 1e6
    return areas


def _open(path: str | Path, what: str) -> rasterio.DatasetReader:
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


@dataclass(frozen=True)
class Block:
    """One block of the rasters being summed: their values and where it lies."""

    arrays: Mapping[str, np.ndarray]  # raster name -> (h, w) values
    transform: Affine
    shape: tuple[int, int]


# A layer: the pixels of a block that count towards one area column.
Layers = Callable[[Block], Mapping[str, np.ndarray]]


def zone_sums(
    rasters: Mapping[str, str | Path],
    layers: Layers,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Area in km2 of each layer per zone: columns zone_type, zone, then one per layer.

    ``rasters`` (name -> path, all on one grid) are read block by block and
    ``layers(block)`` turns each block into boolean layers; ``glaciers`` needs a
    ``glacier_id`` column and must be in the rasters' CRS.
    """
    with contextlib.ExitStack() as stack:
        datasets = {name: stack.enter_context(_open(path, name)) for name, path in rasters.items()}
        if regions_path is not None:
            datasets["regions"] = stack.enter_context(_open(regions_path, "regions"))
        first_name, first = next(iter(datasets.items()))
        for name, dataset in datasets.items():
            if dataset.shape != first.shape or dataset.transform != first.transform:
                raise InputDataError(
                    f"{dataset.name} ({name}) is not on the grid of {first.name} "
                    f"({first_name}): shape {dataset.shape} against {first.shape}"
                )
        zones: list[tuple[str, str]] = [("scene", "all")]
        zones += [("region", name) for name in REGION_NAMES.values()] if regions_path else []
        ids = [] if glaciers is None else [str(i) for i in glaciers["glacier_id"]]
        zones += [("glacier", i) for i in dict.fromkeys(ids)]
        totals: dict[tuple[tuple[str, str], str], float] = {}
        pixel_km2 = row_pixel_areas_km2(first.transform, first.crs, first.height)
        for row, col in itertools.product(
            range(0, first.height, block_size), range(0, first.width, block_size)
        ):
            window = Window(
                col, row, min(block_size, first.width - col), min(block_size, first.height - row)
            )
            shape = (int(window.height), int(window.width))
            arrays = {name: d.read(1, window=window) for name, d in datasets.items()}
            block = Block(arrays, window_transform(window, first.transform), shape)
            weights = pixel_km2[row : row + shape[0], None]
            glacier_zone = None
            if glaciers is not None and ids:
                glacier_zone = rasterio.features.rasterize(
                    ((geom, i + 1) for i, geom in enumerate(glaciers.geometry)),
                    out_shape=shape,
                    transform=block.transform,
                    fill=0,
                    dtype="int32",
                )
            for name, layer in layers(block).items():
                area = np.where(layer, weights, 0.0)
                sums = {("scene", "all"): float(area.sum())}
                if regions_path is not None:
                    by_region = np.bincount(
                        arrays["regions"].ravel().astype(np.int64), area.ravel(), minlength=4
                    )
                    sums |= {("region", n): float(by_region[v]) for v, n in REGION_NAMES.items()}
                if glacier_zone is not None:
                    by_glacier = np.bincount(
                        glacier_zone.ravel(), area.ravel(), minlength=len(ids) + 1
                    )
                    for i, glacier_id in enumerate(ids):
                        key = (("glacier", glacier_id), name)
                        totals[key] = totals.get(key, 0.0) + float(by_glacier[i + 1])
                for zone, value in sums.items():
                    totals[(zone, name)] = totals.get((zone, name), 0.0) + value
    names = list(dict.fromkeys(name for _, name in totals))
    rows = [(*zone, *(totals.get((zone, name), 0.0) for name in names)) for zone in zones]
    return pd.DataFrame(rows, columns=["zone_type", "zone", *names])


@dataclass(frozen=True)
class MaskEntry:
    """One glacier map to tabulate: a run's prediction, its vector outlines, or a
    reference mask, of one date. ``path`` is a mask raster (1 = glacier) or, for
    source ``outlines``, a GeoPackage whose polygons are the glacier."""

    run: str
    model: str
    source: Source
    date: str
    path: Path


def _glacier_pixels(entry: MaskEntry) -> Callable[[Block], np.ndarray]:
    """The glacier pixels of ``entry`` in a block: mask value 1, or for outlines the
    pixels whose centres lie in a polygon (outline polygons are unions of mask
    pixels, so these are exactly the outlined pixels)."""
    if entry.source != "outlines":
        return lambda block: block.arrays["mask"] == GLACIER
    if not entry.path.is_file():
        raise InputDataError(f"outline file not found: {entry.path}")
    polygons = list(gpd.read_file(entry.path).geometry)

    def inside(block: Block) -> np.ndarray:
        if not polygons:
            return np.zeros(block.shape, bool)
        return rasterio.features.rasterize(
            ((geom, 1) for geom in polygons),
            out_shape=block.shape,
            transform=block.transform,
            fill=0,
            dtype="uint8",
        ).astype(bool)

    return inside


def _with_grid(rasters: dict[str, Path], entry: MaskEntry, grid_of: str | Path | None) -> dict:
    """Outlines alone have no grid: the regions raster gives it."""
    if not rasters:
        if grid_of is None:
            raise InputDataError(
                f"outlines {entry.path}: no validity or regions raster gives their grid"
            )
        rasters["grid"] = Path(grid_of)
    return rasters


def observed_pixels(block: Block) -> np.ndarray:
    """The pixels of a block its validity raster says were observed (all without one)."""
    if "validity" in block.arrays:
        return block.arrays["validity"] == VALID
    return np.ones(block.shape, bool)  # no validity raster: every pixel was seen


def zone_areas(
    entry: MaskEntry | str | Path,
    validity_path: str | Path | None = None,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Per zone of one map: ``area_km2`` (observed glacier), ``observed_km2`` and
    ``unobserved_km2`` (pixels that are not :data:`~glaciermap.io.validity.VALID`
    in ``validity_path``; without it every pixel counts as observed)."""
    if not isinstance(entry, MaskEntry):
        entry = MaskEntry("", "", "predicted", "", Path(entry))
    rasters = {} if entry.source == "outlines" else {"mask": entry.path}
    if validity_path is not None:
        rasters["validity"] = Path(validity_path)
    glacier_pixels = _glacier_pixels(entry)

    def layers(block: Block) -> dict[str, np.ndarray]:
        observed = observed_pixels(block)
        glacier = glacier_pixels(block) & observed
        return {"area_km2": glacier, "observed_km2": observed, "unobserved_km2": ~observed}

    return zone_sums(
        _with_grid(rasters, entry, regions_path),
        layers,
        regions_path=regions_path,
        glaciers=glaciers,
        block_size=block_size,
    )


def change_areas(
    before: MaskEntry,
    after: MaskEntry,
    validity: Mapping[str, str | Path],
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Per zone: the area observed on both dates and the glacier area of each
    date within it (columns ``common_observed_km2``, ``area_from_km2``,
    ``area_to_km2``)."""
    rasters: dict[str, Path] = {}
    for name, entry in (("from", before), ("to", after)):
        if entry.source != "outlines":
            rasters[f"mask_{name}"] = entry.path
        if entry.date in validity:
            rasters[f"validity_{name}"] = Path(validity[entry.date])
    rasters = _with_grid(rasters, before, regions_path)
    glacier_before, glacier_after = _glacier_pixels(before), _glacier_pixels(after)

    def side(block: Block, name: str) -> Block:
        arrays = dict(block.arrays)
        if f"mask_{name}" in arrays:
            arrays["mask"] = arrays[f"mask_{name}"]
        if f"validity_{name}" in arrays:
            arrays["validity"] = arrays[f"validity_{name}"]
        else:
            arrays.pop("validity", None)
        return Block(arrays, block.transform, block.shape)

    def layers(block: Block) -> dict[str, np.ndarray]:
        first, second = side(block, "from"), side(block, "to")
        common = observed_pixels(first) & observed_pixels(second)
        return {
            "common_observed_km2": common,
            "area_from_km2": glacier_before(first) & common,
            "area_to_km2": glacier_after(second) & common,
        }

    return zone_sums(
        rasters, layers, regions_path=regions_path, glaciers=glaciers, block_size=block_size
    )


def area_table(
    entries: Iterable[MaskEntry],
    validity: Mapping[str, str | Path] | None = None,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Long table of areas per run, source, date and zone (columns ``AREA_COLUMNS``).

    ``validity`` maps each date to its validity raster. Outline entries are
    tabulated over the whole scene only.
    """
    validity = validity or {}
    frames = []
    for entry in entries:
        outlines = entry.source == "outlines"
        areas = zone_areas(
            entry,
            validity.get(entry.date),
            regions_path=regions_path,
            glaciers=None if outlines else glaciers,
            block_size=block_size,
        )
        if outlines:
            areas = areas[areas["zone_type"] == "scene"]
        frames.append(
            areas.assign(run=entry.run, model=entry.model, source=entry.source, date=entry.date)
        )
    if not frames:
        return pd.DataFrame(columns=AREA_COLUMNS)
    return pd.concat(frames, ignore_index=True)[AREA_COLUMNS]


def area_change_table(
    entries: Sequence[MaskEntry],
    date_order: Sequence[str],
    validity: Mapping[str, str | Path] | None = None,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Change between consecutive dates (in ``date_order``) for each run, source and
    zone, over the pixels observed on both dates (columns ``CHANGE_COLUMNS``).

    ``change_pct`` is relative to the earlier date's area (NaN when that is 0).
    With a single date the table is empty.
    """
    rank = {date: i for i, date in enumerate(date_order)}
    unknown = sorted({entry.date for entry in entries} - set(rank))
    if unknown:
        raise InputDataError(f"area table holds dates not in the date order: {unknown}")
    validity = dict(validity or {})
    groups: dict[tuple[str, str, str], list[MaskEntry]] = {}
    for entry in entries:
        groups.setdefault((entry.run, entry.model, entry.source), []).append(entry)
    frames = []
    for (run, model, source), group in groups.items():
        group = sorted(group, key=lambda e: rank[e.date])
        outlines = source == "outlines"
        for before, after in itertools.pairwise(group):
            change = change_areas(
                before,
                after,
                validity,
                regions_path=regions_path,
                glaciers=None if outlines else glaciers,
                block_size=block_size,
            )
            if outlines:
                change = change[change["zone_type"] == "scene"]
            change = change.assign(
                run=run, model=model, source=source, date_from=before.date, date_to=after.date
            )
            frames.append(change)
    if not frames:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table["change_km2"] = table["area_to_km2"] - table["area_from_km2"]
    earlier = table["area_from_km2"].where(table["area_from_km2"] > 0)
    table["change_pct"] = 100.0 * table["change_km2"] / earlier
    return table[CHANGE_COLUMNS]
