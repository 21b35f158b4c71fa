"""The data-preparation stages, one function per workflow rule.

Each takes the ``data`` section of a validated config (defaults filled in) and
writes its outputs atomically, so a failed stage leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from glaciermap.channels import (
    DEFAULT_CHANNELS,
    TERRAIN,
    needs_dem,
    spectral_bands,
    stack_channels,
)
from glaciermap.data import masks, tiling
from glaciermap.data.normalization import (
    ArrayBands,
    band_stats,
    degenerate_reason,
    scene_range,
)
from glaciermap.data.regions import region_raster
from glaciermap.data.tile_size import resolve_tiles
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError
from glaciermap.io.grid import Grid
from glaciermap.io.outlines import read_outlines
from glaciermap.io.scenes import (
    grid_files,
    read_prepared_channels,
    read_prepared_scene,
    read_scene_layers,
    scene_files,
    scene_grid,
    write_scene,
)
from glaciermap.io.terrain import terrain_layers
from glaciermap.io.validity import MASKED, write_validity
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER
from glaciermap.schema import schema_defaults
from glaciermap.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

# What a ``data:`` mapping that lacks a key uses: the schema's defaults.
_DATA = schema_defaults("data")
_LABELS = schema_defaults("data", "labels")
_TILES = schema_defaults("data", "tiles")


def reference_date(data: Mapping[str, Any]) -> str:
    """The date label whose grid every scene is put on."""
    return data.get("reference_date") or next(iter(data["scenes"]))


def channels_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The configured input channels (``data.channels``)."""
    return tuple(data.get("channels") or DEFAULT_CHANNELS)


def scene_input_files(data: Mapping[str, Any], date: str) -> list[str]:
    """Files read to prepare scene ``date``: its bands (those ``data.channels``
    needs) and validity rasters, the files that define the reference scene's
    grid, and the DEM when a channel comes from it."""
    ref = reference_date(data)
    channels = channels_of(data)
    files = scene_files(data["scenes"][date], date, names=spectral_bands(channels))
    files += grid_files(data["scenes"][ref], ref)
    if needs_dem(channels):
        files.append(Path(data["dem"]["file"]))
    return list(dict.fromkeys(str(file) for file in files))


def scene_settings(data: Mapping[str, Any], date: str) -> dict[str, Any]:
    """The part of ``data`` that :func:`prepare_scene` of ``date`` depends on
    (``channels`` and ``dem`` only where they differ from the four-band default,
    so that a four-band config's jobs keep their parameters)."""
    ref = reference_date(data)
    channels = channels_of(data)
    extra: dict[str, Any] = {}
    if channels != DEFAULT_CHANNELS:
        extra["channels"] = list(channels)
    if needs_dem(channels):
        extra["dem"] = data["dem"]
    return {
        **extra,
        "reference_date": ref,
        "on_grid_mismatch": data.get("on_grid_mismatch", _DATA["on_grid_mismatch"]),
        "min_valid_fraction": data.get("min_valid_fraction", _DATA["min_valid_fraction"]),
        "scenes": {ref: data["scenes"][ref], date: data["scenes"][date]},
    }


def mask_settings(data: Mapping[str, Any], date: str) -> dict[str, Any]:
    """The part of ``data`` that :func:`prepare_mask` of ``date`` depends on."""
    return {
        "scenes": {date: data["scenes"][date]},
        "outlines": data["outlines"],
        "labels": data.get("labels", {}),
    }


def scene_tiles(data: Mapping[str, Any], date: str) -> dict[str, Any]:
    """What :func:`prepare_tiles` of ``date`` cuts by: ``data.tiles``, with the date's
    ``tiles`` override (glaciermap.data.tile_size) under ``override`` when it has one."""
    tiles = dict(data.get("tiles", {}))
    override = data["scenes"][date].get("tiles")
    if not override:
        return tiles
    return {**tiles, "override": override, "override_key": f"data.scenes.{date}.tiles"}


def regions_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``data`` that :func:`prepare_regions` depends on."""
    ref = reference_date(data)
    keys = ("outlines", "regions", "tiles")
    return {
        "reference_date": ref,
        "scenes": {ref: data["scenes"][ref]},
        **{key: data[key] for key in keys if key in data},
    }


def _acquired(data: Mapping[str, Any], date: str) -> dt.date:
    return dt.date.fromisoformat(data["scenes"][date]["acquired"])


def load_outlines(
    data: Mapping[str, Any],
    date: str,
    crs: CRS,
    base_dir: str | Path = ".",
    all_glaciers: bool = False,
) -> gpd.GeoDataFrame:
    """The configured outlines for scene ``date`` in ``crs`` (all ids if ``all_glaciers``)."""
    spec = data["outlines"]
    return read_outlines(
        Path(base_dir) / spec["file"],
        _acquired(data, date),
        crs,
        layer=spec.get("layer"),
        fmt=spec.get("format", "auto"),
        glaciers=None if all_glaciers else spec.get("glaciers"),
    )


def prepare_scene(
    data: Mapping[str, Any],
    date: str,
    output: str | Path,
    validity_output: str | Path,
    base_dir: str | Path = ".",
) -> None:
    """Write ``results/scenes/{date}.tif`` (the ``data.channels`` on the reference
    grid, NaN where no input has a valid pixel or the DEM has no data) and
    ``results/validity/{date}.tif``.

    Spectral bands are reflectance (20 m bands resampled bilinearly onto the
    grid), terrain channels come from ``data.dem`` reprojected onto the grid
    (:mod:`glaciermap.io.terrain`), indices from the bands (:mod:`glaciermap.channels`).
    A date whose valid share of the grid is below ``data.min_valid_fraction``
    (or that has no valid pixel at all) is refused, and nothing is written.
    """
    ref = reference_date(data)
    channels = channels_of(data)
    bands = spectral_bands(channels)
    target = scene_grid(data["scenes"][ref], ref, base_dir)
    on_mismatch = data.get("on_grid_mismatch", _DATA["on_grid_mismatch"])
    layers = read_scene_layers(data["scenes"][date], date, base_dir, target, on_mismatch, bands)
    fraction = layers.valid_fraction
    minimum = data.get("min_valid_fraction", _DATA["min_valid_fraction"])
    if fraction == 0 or fraction < minimum:
        masked = float((layers.codes == MASKED).mean())
        raise InputDataError(
            f"scene '{date}' (config key 'data.scenes.{date}'): {fraction:.1%} of the grid of "
            f"the reference scene '{ref}' is valid ({masked:.1%} masked as cloud, shadow or "
            f"defect, the rest without data), below config key 'data.min_valid_fraction' "
            f"({minimum:.1%})"
        )
    values = layers.bands
    if tuple(bands) != channels:
        terrain = None
        if needs_dem(channels):
            names = [c for c in channels if c in TERRAIN]
            terrain = terrain_layers(data["dem"], layers.grid, names, base_dir)
        values = stack_channels(channels, dict(zip(bands, layers.bands, strict=True)), terrain)
        # Indices and terrain are nodata wherever the scene is (and where the DEM is).
        values[:, ~np.isfinite(layers.bands).all(axis=0)] = np.nan
        values[:, ~np.isfinite(values).all(axis=0)] = np.nan
    write_validity(layers.codes, layers.grid, validity_output)
    try:
        write_scene(values, layers.grid, output, tags=layers.tags(), channels=channels)
    except BaseException:
        Path(validity_output).unlink(missing_ok=True)
        raise
    for report in layers.inputs:
        log.info(
            "scene %s: %s (%s): %.1f%% cloudy, %.1f%% of the grid valid, %.1f%% used",
            date,
            report.input,
            ", ".join(report.items),
            100 * report.cloudy_fraction,
            100 * report.valid_fraction,
            100 * report.used_fraction,
        )
    log.info(
        "scene %s: %s, %.1f%% valid -> %s, %s",
        date,
        layers.grid.describe(),
        100 * fraction,
        output,
        validity_output,
    )


def prepare_mask(
    data: Mapping[str, Any],
    date: str,
    scene_path: str | Path,
    output: str | Path,
    base_dir: str | Path = ".",
) -> None:
    """Write ``results/masks/{date}.tif``: the outlines rasterized on the scene grid,
    255 (no label) where the scene is nodata and where ``data.labels`` calls the
    label uncertain."""
    scene, grid = read_prepared_scene(scene_path)
    outlines = load_outlines(data, date, grid.crs, base_dir)
    masks.require_overlap(outlines, grid, Path(base_dir) / data["outlines"]["file"])
    labels = {**_LABELS, **data.get("labels", {})}
    stale = masks.stale_outlines(
        outlines, _acquired(data, date), labels.get("max_outline_age_years")
    )
    nodata = ~np.isfinite(scene).all(axis=0)
    mask = masks.rasterize_mask(
        outlines,
        grid,
        nodata,
        ignore=stale,
        boundary_ignore_px=labels["boundary_ignore_px"],
    )
    masks.write_uint8(mask, grid, output, nodata=NODATA)
    if stale.any():
        log.info(
            "mask %s: %d glacier(s) ignored, outline more than %g years from the scene: %s",
            date,
            int(stale.sum()),
            labels["max_outline_age_years"],
            ", ".join(outlines.loc[stale, "glacier_id"]),
        )
    log.info(
        "mask %s: %d outlines, %.1f%% glacier, %.1f%% no label (%.1f%% uncertain) -> %s",
        date,
        len(outlines),
        100 * (mask == GLACIER).mean(),
        100 * (mask == NODATA).mean(),
        100 * ((mask == NODATA) & ~nodata).mean(),
        output,
    )


def prepare_regions(
    data: Mapping[str, Any], scene_path: str | Path, output: str | Path, base_dir: str | Path = "."
) -> None:
    """Write ``results/regions.tif``: the pixels of the train, validation and test tiles."""
    with rasterio.open(scene_path) as dataset:
        grid = Grid.of(dataset)
    ref = reference_date(data)

    def outlines() -> gpd.GeoDataFrame:
        # Said first: outlines off the scene would otherwise surface as an empty region.
        frame = load_outlines(data, ref, grid.crs, base_dir, True)
        masks.require_overlap(frame, grid, Path(base_dir) / data["outlines"]["file"])
        return frame

    regions = region_raster(data["regions"], grid, outlines)
    tiles = {**_TILES, **data.get("tiles", {})}
    splits = tiling.plan_splits(
        regions,
        tiles["size"],
        tiles["stride"],
        tiles["val_fraction"],
        tiles["val_block_tiles"],
        tiles["split_seed"],
    )
    masks.write_uint8(tiling.split_raster(grid.shape, splits), grid, output, nodata=None)
    log.info("regions: %s tiles -> %s", {k: len(v) for k, v in splits.items()}, output)


def _read_uint8(path: str | Path, grid: Grid, allowed: Sequence[int] | None = None) -> np.ndarray:
    """A one-band raster on ``grid``; with ``allowed``, any other value is an error."""
    try:
        with rasterio.open(path) as dataset:
            if not Grid.of(dataset).matches(grid):
                raise InputDataError(f"{path} is not on the grid of the scene ({grid.describe()})")
            values = dataset.read(1)
    except RasterioError as exc:
        raise InputDataError(f"cannot read raster {path}: {exc}") from exc
    if allowed is not None:
        unknown = np.setdiff1d(np.unique(values), allowed)
        if unknown.size:
            raise InputDataError(
                f"{path}: values {unknown.tolist()[:10]} are not labels "
                f"(expected {list(allowed)}: not glacier, glacier, no label)"
            )
    return values


def cut_tiles(
    scene: np.ndarray,
    mask: np.ndarray,
    windows: np.ndarray,
    grid: Grid,
    max_nodata: float,
    ranges: np.ndarray,
) -> tuple[TileSet, np.ndarray]:
    """The tiles at ``windows`` with at most ``max_nodata`` unlabelled pixels, and the
    pixels of those tiles where the scene has data (for band statistics).
    ``ranges`` (bands, 2) is the scene's robust range, stored with every tile.

    Tile masks keep the reference convention (:mod:`glaciermap.labels`): 255 where
    the scene is nodata or the label is uncertain, so those pixels teach nothing.
    """
    image_nodata = ~np.isfinite(scene).all(axis=0)
    unlabelled = image_nodata | (mask == NODATA)
    size = windows[:, 2].max() if len(windows) else 0
    fraction = tiling.window_sums(unlabelled, windows) / np.maximum(
        windows[:, 2] * windows[:, 3], 1
    )
    kept = windows[fraction <= max_nodata]
    images = np.zeros((len(kept), scene.shape[0], size, size), dtype=np.float32)
    labels = np.zeros((len(kept), size, size), dtype=np.uint8)
    valid = np.zeros((len(kept), size, size), dtype=bool)
    for i, (row, col, height, width) in enumerate(kept):
        rows, cols = slice(row, row + height), slice(col, col + width)
        # Models see nodata as 0, in training as in prediction.
        images[i] = np.nan_to_num(scene[:, rows, cols], nan=0.0, posinf=0.0, neginf=0.0)
        valid[i] = ~image_nodata[rows, cols]
        labels[i] = np.where(unlabelled[rows, cols], NODATA, mask[rows, cols] == GLACIER)
    transform = np.array(tuple(grid.transform)[:6])
    tiles = TileSet(images, labels, kept, grid.crs.to_wkt(), transform, ranges)
    return tiles, valid


def _require_both_classes(test: TileSet, mask_path: str | Path) -> None:
    """Refuse a test region whose labels lack a class: every score of it would be
    undefined or meaningless (recall 0/0 with no glacier)."""
    labels = test.masks[test.masks != NODATA]
    for value, name in ((GLACIER, "glacier"), (NOT_GLACIER, "not-glacier")):
        if not (labels == value).any():
            raise InputDataError(
                f"the test region holds no {name} pixel in {mask_path} ({labels.size} labelled "
                "pixels in its tiles): its scores would be undefined; move config key "
                "'data.regions.test' onto both glacier and ice-free ground"
            )


def prepare_tiles(
    scene_path: str | Path,
    mask_path: str | Path,
    regions_path: str | Path,
    tiles_config: Mapping[str, Any],
    out_dir: str | Path,
) -> dict[str, int]:
    """Write ``{out_dir}/{train,val,test}.npz`` and ``stats.json`` (train tiles only;
    it names the scene's channels, which the runs and checkpoints take from it)."""
    scene, grid, channels = read_prepared_channels(scene_path)
    mask = _read_uint8(mask_path, grid, (NOT_GLACIER, GLACIER, NODATA))
    regions = _read_uint8(regions_path, grid)
    tiles = dict(tiles_config)
    override = tiles.pop("override", None)
    key = tiles.pop("override_key", "tiles")
    pixel_m = None
    if grid.crs is not None and grid.crs.is_projected:
        pixel_m = math.sqrt(abs(grid.transform.a * grid.transform.e))
        pixel_m *= grid.crs.linear_units_factor[1]
    tiles = resolve_tiles(tiles, override, pixel_m, key)
    size, stride, max_nodata = tiles["size"], tiles["stride"], tiles["max_nodata_fraction"]
    windows = tiling.windows_from_regions(regions, size, stride)
    # A constant or nearly empty scene teaches nothing and cannot be ranged: refused.
    reason = degenerate_reason(ArrayBands(scene), channels)
    if reason is not None:
        raise InputDataError(f"scene {scene_path}: {reason}")
    # Over the whole scene, as prediction computes it: no label is used.
    ranges = scene_range(ArrayBands(scene), channels=channels)
    sets, valid = {}, {}
    for split, split_windows in windows.items():
        sets[split], valid[split] = cut_tiles(scene, mask, split_windows, grid, max_nodata, ranges)
        if len(sets[split]) == 0:
            raise InputDataError(
                f"scene {scene_path}: no {split} tile of {size}x{size} has at most "
                f"{max_nodata:.0%} nodata (config key 'data.tiles.max_nodata_fraction'; "
                f"{regions_path} may come from other tile settings)"
            )
    _require_both_classes(sets["test"], mask_path)
    stats = {
        **band_stats(sets["train"].images, valid["train"], channels),
        "range": ranges.tolist(),
    }
    out = Path(out_dir)
    for split, tile_set in sets.items():
        tile_set.save(out / f"{split}.npz")
    write_text_atomic(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    counts = {split: len(s) for split, s in sets.items()}
    log.info("tiles of %s: %s -> %s", scene_path, counts, out)
    return counts
