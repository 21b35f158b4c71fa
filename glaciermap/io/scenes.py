"""Read a scene of one date as four bands (blue, green, red, nir) of reflectance.

A date is one input or several (:mod:`glaciermap.io.scene_inputs`: a
multi-band file with band indices, one file per band such as Sentinel-2
``*_B02_10m.jp2``, or a mix; ``inputs:`` lists several, e.g. overlapping
tiles). Each input may name a validity source (:mod:`glaciermap.io.validity`:
the L2A SCL band or a mask of your own). The inputs are merged onto the date's
grid preferring valid pixels (:mod:`glaciermap.io.mosaic`); pixels valid in no
input are NaN.

The grid of a date is that of its blue band, or for several inputs the
smallest grid on the first input's pixel lattice that covers them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from glaciermap.bands import BANDS
from glaciermap.errors import InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid, covering_grid
from glaciermap.io.mosaic import SceneLayers, merge_inputs
from glaciermap.io.scene_inputs import (
    SceneInput,
    check_band,
    input_grid,
    open_raster,
    read_input_bands,
    require_one_band_set,
    scene_inputs,
)
from glaciermap.io.validity import check_validity_source, read_invalid
from glaciermap.utils.atomic import atomic_path


def scene_files(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> list[Path]:
    """Every file a date reads: each input's band files and validity raster."""
    files = [file for entry in scene_inputs(scene, date) for file in entry.files(base_dir)]
    return list(dict.fromkeys(files))


def grid_files(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> list[Path]:
    """The files that define a date's grid: the blue band of each input."""
    return [entry.band_sources(base_dir)["blue"].file for entry in scene_inputs(scene, date)]


def check_scene_sources(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> None:
    """Open every file header of a date: readable, band present, georeferenced (no
    pixels read); the inputs of a mosaic must have one band set."""
    inputs = scene_inputs(scene, date)
    require_one_band_set(inputs, base_dir)
    for entry in inputs:
        for source in entry.band_sources(base_dir).values():
            with open_raster(source.file, source.key) as dataset:
                check_band(dataset, source)
        validity = entry.validity(base_dir)
        if validity is not None:
            check_validity_source(validity)


def scene_grid(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> Grid:
    """The grid of a date: its blue band's, or the grid covering all its inputs."""
    grids = [input_grid(entry, base_dir) for entry in scene_inputs(scene, date)]
    if len(grids) == 1:
        return grids[0]
    try:
        return covering_grid(grids)
    except ValueError as exc:
        raise InputDataError(f"scene '{date}' (config key 'data.scenes.{date}'): {exc}") from exc


def _input_items(entry: SceneInput, base_dir: str | Path) -> tuple[str, ...]:
    """The products of an input: the STAC items a downloaded file names in its tags,
    else the SAFE product or the blue band's file."""
    blue = entry.band_sources(base_dir)["blue"]
    with open_raster(blue.file, blue.key) as dataset:
        tags = dataset.tags()
    listed = tags.get("stac_item_ids") or tags.get("stac_item_id")
    if listed:
        return tuple(listed.split(","))
    return (sentinel2.safe_name(blue.file) or blue.file.name,)


def read_scene_layers(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    target: Grid | None = None,
    on_mismatch: str = "reproject",
) -> SceneLayers:
    """Scene ``date`` on ``target`` (default: its own grid): the merged bands, NaN
    unless valid, and the validity codes of every pixel.

    Bands on the target's pixel lattice are copied; others are reprojected
    (bilinear; validity rasters by nearest neighbour) or refused by ``on_mismatch``.
    """
    inputs = scene_inputs(scene, date)
    require_one_band_set(inputs, base_dir)
    target = target or scene_grid(scene, date, base_dir)
    invalid = []
    for entry in inputs:
        source = entry.validity(base_dir)
        invalid.append(read_invalid(source, target) if source is not None else None)
    return merge_inputs(
        target,
        invalid,
        lambda i: read_input_bands(inputs[i], target, base_dir, on_mismatch),
        lambda i: (inputs[i].key, _input_items(inputs[i], base_dir)),
    )


def read_scene(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    target: Grid | None = None,
    on_mismatch: str = "reproject",
) -> tuple[np.ndarray, Grid]:
    """Read scene ``date`` as float32 (4, H, W) blue/green/red/nir, NaN where no input
    has a valid pixel (:func:`read_scene_layers` without the validity codes)."""
    layers = read_scene_layers(scene, date, base_dir, target, on_mismatch)
    return layers.bands, layers.grid


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
