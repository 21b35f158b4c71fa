"""Read a scene of one date as four bands (blue, green, red, nir) of reflectance.

A scene is configured either as one multi-band file with band indices, or as one
file per band (e.g. Sentinel-2 ``*_B02_10m.jp2``), or a mix. Values become
float32 reflectance-like numbers with NaN as nodata:

- ``generic``: (DN + offset) * scale; ``nodata`` from the config or the file.
- ``sentinel2_l2a``: (DN + offset) / 10000 with offset -1000 from processing
  baseline 04.00 on (read from the config or the SAFE name ``N0400``); DN 0 = nodata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from glaciermap.bands import BANDS
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid, reproject_to_grid
from glaciermap.utils.atomic import atomic_path


@dataclass(frozen=True)
class BandSource:
    """One band of a scene: the file, the 1-based band index and the config key naming it."""

    file: Path
    band: int
    key: str
    single_band_file: bool  # configured as a bare path: the file must hold exactly one band


def band_sources(
    scene: Mapping[str, Any], date: str, base_dir: str | Path = "."
) -> dict[str, BandSource]:
    """Resolve the configured band mapping of scene ``date`` to files and band indices."""
    base = Path(base_dir)
    sources = {}
    for name in BANDS:
        source = scene["bands"][name]
        key = f"data.scenes.{date}.bands.{name}"
        if isinstance(source, int):
            if "file" not in scene:
                raise ConfigError(
                    f"config key '{key}': a band index needs 'data.scenes.{date}.file'"
                )
            sources[name] = BandSource(base / scene["file"], source, key, False)
        elif isinstance(source, str):
            sources[name] = BandSource(base / source, 1, key, True)
        else:
            sources[name] = BandSource(base / source["file"], source.get("band", 1), key, False)
    return sources


@contextlib.contextmanager
def open_raster(path: Path, key: str) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster, turning GDAL failures into an error naming the file and config key."""
    try:
        with rasterio.open(path) as dataset:
            yield dataset
    except RasterioError as exc:
        raise InputDataError(f"cannot read raster {path} (config key '{key}'): {exc}") from exc


def _check_band(dataset: rasterio.io.DatasetReader, source: BandSource) -> None:
    if source.single_band_file and dataset.count != 1:
        raise InputDataError(
            f"raster {source.file} (config key '{source.key}') has {dataset.count} bands; a bare "
            "path must name a single-band file, use {file, band} or an index into the scene's file"
        )
    if source.band > dataset.count:
        raise InputDataError(
            f"raster {source.file} (config key '{source.key}') has {dataset.count} band(s), "
            f"band {source.band} is missing"
        )
    if dataset.crs is None:
        raise InputDataError(
            f"raster {source.file} (config key '{source.key}') has no CRS "
            "(not georeferenced, or truncated)"
        )


def check_scene_sources(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> None:
    """Open every band's file header: readable, band present, georeferenced (no pixels read)."""
    for source in band_sources(scene, date, base_dir).values():
        with open_raster(source.file, source.key) as dataset:
            _check_band(dataset, source)


def scene_grid(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> Grid:
    """The grid of a scene: that of its blue band."""
    source = band_sources(scene, date, base_dir)["blue"]
    with open_raster(source.file, source.key) as dataset:
        _check_band(dataset, source)
        return Grid.of(dataset)


def _to_reflectance(
    raw: np.ndarray,
    file_nodata: float | None,
    scene: Mapping[str, Any],
    source: BandSource,
    date: str,
) -> np.ndarray:
    product = scene.get("product", "generic")
    if product == "sentinel2_l2a":
        baseline = scene.get("processing_baseline") or sentinel2.baseline_from_name(source.file)
        if baseline is None:
            raise ConfigError(
                f"config key 'data.scenes.{date}.processing_baseline': not set and not found "
                f"in the file name {source.file} (expected a SAFE name with _N0400_ or similar)"
            )
        nodata: float | None = sentinel2.NODATA_DN
        values = (raw + sentinel2.reflectance_offset(baseline)) / sentinel2.QUANTIFICATION_VALUE
    else:
        configured = scene.get("nodata")
        nodata = configured if configured is not None else file_nodata
        values = (raw + scene.get("offset", 0.0)) * scene.get("scale", 1.0)
    values = values.astype(np.float32)
    if nodata is not None:
        values[raw == nodata] = np.nan
    values[~np.isfinite(raw)] = np.nan
    return values


def _align(values: np.ndarray, grid: Grid, target: Grid, on_mismatch: str, what: str) -> np.ndarray:
    if grid.matches(target):
        return values
    if on_mismatch == "error":
        raise InputDataError(
            f"{what} is on another grid ({grid.describe()}) than the reference "
            f"({target.describe()}); set config key 'data.on_grid_mismatch: reproject' to "
            "reproject it"
        )
    return reproject_to_grid(values, grid, target)


def read_scene(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    target: Grid | None = None,
    on_mismatch: str = "reproject",
) -> tuple[np.ndarray, Grid]:
    """Read scene ``date`` as float32 (4, H, W) blue/green/red/nir with NaN nodata.

    Bands come onto the grid of ``target`` (default: the scene's blue band); a
    band on another grid is reprojected (bilinear) or refused by ``on_mismatch``.
    """
    sources = band_sources(scene, date, base_dir)
    target = target or scene_grid(scene, date, base_dir)
    bands = []
    for name, source in sources.items():
        with open_raster(source.file, source.key) as dataset:
            _check_band(dataset, source)
            grid = Grid.of(dataset)
            try:
                # float32 holds 16-bit DNs exactly at half the memory of float64.
                raw = dataset.read(source.band).astype(np.float32)
            except RasterioError as exc:
                raise InputDataError(
                    f"cannot read band {source.band} of raster {source.file} "
                    f"(config key '{source.key}'), the file may be truncated: {exc}"
                ) from exc
            file_nodata = dataset.nodatavals[source.band - 1]
        values = _to_reflectance(raw, file_nodata, scene, source, date)
        what = f"band {name} of scene '{date}' ({source.file})"
        bands.append(_align(values, grid, target, on_mismatch, what))
    return np.stack(bands), target


def write_scene(
    array: np.ndarray,
    grid: Grid,
    path: str | Path,
    tags: Mapping[str, str] | None = None,
    band_tags: Sequence[Mapping[str, str]] = (),
) -> None:
    """Write a (4, H, W) float32 scene (``results/scenes/{date}.tif``) atomically.

    Bands are described by name (blue, green, red, nir); ``tags`` go on the
    dataset (e.g. the source items) and ``band_tags`` on each band.
    """
    profile = geotiff_profile(grid, "float32", count=array.shape[0], nodata=float("nan"))
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(array.astype(np.float32, copy=False))
        out.descriptions = BANDS[: array.shape[0]]
        if tags:
            out.update_tags(**tags)
        for index, extra in enumerate(band_tags, start=1):
            out.update_tags(index, **extra)


def read_prepared_scene(path: str | Path) -> tuple[np.ndarray, Grid]:
    """Read a ``results/scenes/{date}.tif`` written by :func:`write_scene`."""
    path = Path(path)
    with open_raster(path, "results/scenes") as dataset:
        if dataset.count != len(BANDS):
            raise InputDataError(f"prepared scene {path} has {dataset.count} bands, not 4")
        try:
            return dataset.read().astype(np.float32), Grid.of(dataset)
        except RasterioError as exc:
            raise InputDataError(f"cannot read prepared scene {path}: {exc}") from exc
