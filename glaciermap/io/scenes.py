"""Read a scene of one date as spectral bands of reflectance (default blue,
green, red, nir; ``names`` picks others, :mod:`glaciermap.channels`).

A date is one input or several (:mod:`glaciermap.io.scene_inputs`: a
multi-band file with band indices, one file per band such as Sentinel-2
``*_B02_10m.jp2``, or a mix; ``inputs:`` lists several, e.g. overlapping
tiles). Each input may name a validity source (:mod:`glaciermap.io.validity`:
the L2A SCL band or a mask of your own). The inputs are merged onto the date's
grid preferring valid pixels (:mod:`glaciermap.io.mosaic`); pixels valid in no
input are NaN.

The grid of a date is that of its grid band (blue if configured), or for
several inputs the smallest grid on the first input's pixel lattice that covers
them all. A prepared scene (``results/scenes/{date}.tif``) holds the configured
channels, each band described by its channel name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from glaciermap.channels import CHANNELS, DEFAULT_CHANNELS
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


def scene_files(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Every file a date reads: each input's band files (``names``, default all
    configured) and validity raster."""
    files = [file for entry in scene_inputs(scene, date) for file in entry.files(base_dir, names)]
    return list(dict.fromkeys(files))


def grid_files(scene: Mapping[str, Any], date: str, base_dir: str | Path = ".") -> list[Path]:
    """The files that define a date's grid: the grid band of each input."""
    return [
        entry.band_sources(base_dir, [entry.grid_band])[entry.grid_band].file
        for entry in scene_inputs(scene, date)
    ]


def check_scene_sources(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    names: Sequence[str] | None = None,
) -> None:
    """Open every file header of a date: readable, bands ``names`` (default all
    configured) present, georeferenced (no pixels read); the inputs of a mosaic
    must have one band set."""
    inputs = scene_inputs(scene, date)
    require_one_band_set(inputs, base_dir, names)
    for entry in inputs:
        for source in entry.band_sources(base_dir, names).values():
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
    else the SAFE product or the grid band's file."""
    grid_band = entry.band_sources(base_dir, [entry.grid_band])[entry.grid_band]
    with open_raster(grid_band.file, grid_band.key) as dataset:
        tags = dataset.tags()
    listed = tags.get("stac_item_ids") or tags.get("stac_item_id")
    if listed:
        return tuple(listed.split(","))
    return (sentinel2.safe_name(grid_band.file) or grid_band.file.name,)


def read_scene_layers(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    target: Grid | None = None,
    on_mismatch: str = "reproject",
    names: Sequence[str] | None = None,
) -> SceneLayers:
    """Scene ``date`` on ``target`` (default: its own grid): the merged bands
    ``names`` (default all configured), NaN unless valid, and the validity codes
    of every pixel.

    Bands on the target's pixel lattice are copied; others are reprojected
    (bilinear; validity rasters by nearest neighbour) or refused by ``on_mismatch``.
    """
    inputs = scene_inputs(scene, date)
    require_one_band_set(inputs, base_dir, names)
    target = target or scene_grid(scene, date, base_dir)
    invalid = []
    for entry in inputs:
        source = entry.validity(base_dir)
        invalid.append(read_invalid(source, target) if source is not None else None)
    return merge_inputs(
        target,
        invalid,
        lambda i: read_input_bands(inputs[i], target, base_dir, on_mismatch, names),
        lambda i: (inputs[i].key, _input_items(inputs[i], base_dir)),
    )


def read_scene(
    scene: Mapping[str, Any],
    date: str,
    base_dir: str | Path = ".",
    target: Grid | None = None,
    on_mismatch: str = "reproject",
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, Grid]:
    """Read scene ``date`` as float32 (B, H, W) bands ``names`` (default all
    configured), NaN where no input has a valid pixel (:func:`read_scene_layers`
    without the validity codes)."""
    layers = read_scene_layers(scene, date, base_dir, target, on_mismatch, names)
    return layers.bands, layers.grid


def write_scene(
    array: np.ndarray,
    grid: Grid,
    path: str | Path,
    tags: Mapping[str, str] | None = None,
    band_tags: Sequence[Mapping[str, str]] = (),
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> None:
    """Write a (C, H, W) float32 scene (``results/scenes/{date}.tif``) atomically.

    Bands are described by their channel name (default blue, green, red, nir);
    ``tags`` go on the dataset (e.g. the source items) and ``band_tags`` on each band.
    """
    if len(channels) < array.shape[0]:
        raise ValueError(f"{array.shape[0]} bands but only channels {list(channels)}")
    profile = geotiff_profile(grid, "float32", count=array.shape[0], nodata=float("nan"))
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(array.astype(np.float32, copy=False))
        out.descriptions = tuple(channels[: array.shape[0]])
        if tags:
            out.update_tags(**tags)
        for index, extra in enumerate(band_tags, start=1):
            out.update_tags(index, **extra)


def prepared_channels(dataset: rasterio.io.DatasetReader, path: Path) -> tuple[str, ...]:
    """The channels of a prepared scene, from its band descriptions (a scene of
    four undescribed bands: blue, green, red, nir, as written before channels)."""
    described = tuple(str(d).lower() if d else "" for d in dataset.descriptions)
    if not any(described) and len(described) == len(DEFAULT_CHANNELS):
        return DEFAULT_CHANNELS
    unknown = [d or "(none)" for d in described if d not in CHANNELS]
    if unknown:
        raise InputDataError(
            f"prepared scene {path}: band descriptions {', '.join(unknown)} are not channel "
            f"names ({', '.join(CHANNELS)})"
        )
    return described


def read_prepared_channels(path: str | Path) -> tuple[np.ndarray, Grid, tuple[str, ...]]:
    """Read a ``results/scenes/{date}.tif`` written by :func:`write_scene`: the
    (C, H, W) values, the grid and the channel names."""
    path = Path(path)
    with open_raster(path, "results/scenes") as dataset:
        channels = prepared_channels(dataset, path)
        try:
            return dataset.read().astype(np.float32), Grid.of(dataset), channels
        except RasterioError as exc:
            raise InputDataError(f"cannot read prepared scene {path}: {exc}") from exc


def read_prepared_scene(path: str | Path) -> tuple[np.ndarray, Grid]:
    """Read a ``results/scenes/{date}.tif`` written by :func:`write_scene`."""
    values, grid, _ = read_prepared_channels(path)
    return values, grid
