"""Reading labelled chip datasets: folders of image GeoTIFFs, each with a mask (or outlines).

A chip dataset (config ``data.chips.<label>``, docs/chips.md) is what many
glacier labels come as: small images exported from Google Earth Engine or
published with a paper, any CRS, often uint16 DNs with nodata 0, and a mask
GeoTIFF per image whose values say glacier, not glacier or "ignore". This
module turns one chip into the workflow's conventions (four float32 bands of
reflectance with NaN nodata, a uint8 mask of :mod:`glaciermap.labels`), decides
which chips are unusable and why, and writes a dataset's tile stores. A
dataset's settings and file listing are :mod:`glaciermap.data.chip_dataset`.

Chips are used at their own resolution and on their own grid: nothing is
reprojected, and every tile keeps the georeference of its chip.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from glaciermap.channels import DEFAULT_CHANNELS, TERRAIN, needs_dem, stack_channels
from glaciermap.data.chip_dataset import (
    BadChip,
    ChipDataset,
    ChipFiles,
    chip_files,
    image_files,
)
from glaciermap.data.chip_folds import fold_splits
from glaciermap.data.chip_split import assign_train_val, chip_centres_lonlat, pixel_size_m
from glaciermap.data.masks import rasterize_mask
from glaciermap.data.normalization import (
    ArrayBands,
    band_stats,
    degenerate_reason,
    scene_range,
)
from glaciermap.data.tile_size import needs_pixel_size, resolve_tiles
from glaciermap.data.tilestore import TileSet
from glaciermap.data.tiling import covering_starts
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.grid import Grid
from glaciermap.io.outlines import detect_format, read_outlines
from glaciermap.io.scene_inputs import PREPARE_BYTES_PER_PIXEL, memory_bytes
from glaciermap.io.terrain import terrain_layers
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER
from glaciermap.utils.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


SPLITS = ("train", "val", "test")
INVENTORY_COLUMNS = (
    "image", "mask", "status", "reason", "split", "acquired", "crs", "width", "height",
    "lon", "lat", "n_tiles", "labelled_fraction", "glacier_fraction", "fold",
)  # fmt: skip


def check_chip_dataset(dataset: ChipDataset, base_dir: str | Path = ".") -> None:
    """Checks before any job: images found, outline file readable, dates where needed."""
    image_files(dataset, base_dir)
    if dataset.outlines is None:
        return
    file = Path(base_dir) / dataset.outlines["file"]
    if not file.is_file():
        raise ConfigError(f"{dataset.key('outlines.file')}: file not found: {file}")
    fmt = detect_format(file, dataset.outlines.get("layer"), dataset.outlines.get("format", "auto"))
    if fmt == "glims" and not dataset.date_rule.known:
        raise ConfigError(
            f"{dataset.key('acquired')}: GLIMS outlines need the chips' acquisition date "
            "to pick the analysis nearest to it"
        )


# ---------------------------------------------------------------- one chip


@dataclass
class Chip:
    """One usable chip: ``bands`` (C, H, W) float32 of the dataset's channels
    (reflectance for spectral bands), NaN = nodata;
    ``labels`` (H, W) uint8 1 glacier, 0 not, 255 no label (image nodata, an ignore
    value, or the mask's nodata)."""

    files: ChipFiles
    bands: np.ndarray
    labels: np.ndarray
    grid: Grid
    acquired: dt.date | None
    reading: MaskReading | None = None  # how the mask file's values were read (not outlines)

    @property
    def image_valid(self) -> np.ndarray:
        return np.isfinite(self.bands).all(axis=0)


def _reflectance(
    raw: np.ndarray, file_nodata: Sequence[float | None], dataset: ChipDataset, image: Path
) -> np.ndarray:
    """(B, H, W) DNs -> float32 values by the dataset's product rule, NaN = nodata."""
    if dataset.product == "sentinel2_l2a":
        baseline = dataset.processing_baseline or sentinel2.baseline_from_name(image)
        if baseline is None:
            raise ConfigError(
                f"{dataset.key('processing_baseline')}: not set and not in the file name "
                f"{image} (expected a SAFE-style name with _N0400_ or similar)"
            )
        return sentinel2.to_reflectance(raw, sentinel2.reflectance_offset(baseline))
    values = ((raw.astype(np.float64) + dataset.offset) * dataset.scale).astype(np.float32)
    for band, nodata in enumerate(file_nodata):
        nodata = dataset.nodata if dataset.nodata is not None else nodata
        if nodata is not None:
            values[band][raw[band] == nodata] = np.nan
    values[~np.isfinite(raw)] = np.nan
    return values


def _read_image(dataset: ChipDataset, image: Path) -> tuple[np.ndarray, Grid]:
    """The dataset's channels of one image: its spectral bands (``dataset.bands``), the
    indices computed from them and the terrain from the DEM put onto the chip's grid."""
    names = list(dataset.bands)
    indexes = [dataset.bands[name] for name in names]
    try:
        with rasterio.open(image) as source:
            if source.crs is None:
                raise BadChip(image, "has no CRS (not georeferenced)")
            if max(indexes) > source.count:
                missing = [n for n in names if dataset.bands[n] > source.count]
                raise BadChip(
                    image,
                    f"has {source.count} band(s); band {dataset.bands[missing[0]]} "
                    f"({missing[0]}, {dataset.key('bands')}) is missing",
                )
            need, have = source.width * source.height * PREPARE_BYTES_PER_PIXEL, memory_bytes()
            if need > have:  # said from the header, before reading it whole
                raise BadChip(
                    image,
                    f"declares {source.width}x{source.height} pixels: reading it needs about "
                    f"{need / 2**30:.0f} GiB, more than this machine's {have / 2**30:.0f} GiB",
                )
            raw = source.read(indexes)
            nodata = [source.nodatavals[i - 1] for i in indexes]
            grid = Grid.of(source)
    except RasterioError as exc:
        raise BadChip(image, f"unreadable ({exc})") from exc
    values = _reflectance(raw, nodata, dataset, image)
    if tuple(names) == dataset.channels:
        return values, grid
    terrain = None
    if needs_dem(dataset.channels):
        assert dataset.dem is not None  # ChipDataset refuses terrain channels without a DEM
        wanted = [c for c in dataset.channels if c in TERRAIN]
        terrain = terrain_layers(dataset.dem, grid, wanted)
    channels = stack_channels(dataset.channels, dict(zip(names, values, strict=True)), terrain)
    channels[:, ~np.isfinite(channels).all(axis=0)] = np.nan
    return channels, grid


@dataclass
class MaskReading:
    """The values found in mask files and how they were read (summed over chips).

    ``values``: pixel count per value found; ``nodata``: pixel count per value that
    a file's nodata tag names, by how it was read (``ignore`` when it is no class
    value, else the class it is: a nodata tag never removes a class value).
    """

    values: dict[float, int] = field(default_factory=dict)
    nodata: dict[tuple[float, str], int] = field(default_factory=dict)

    def add(self, other: MaskReading) -> None:
        for value, count in other.values.items():
            self.values[value] = self.values.get(value, 0) + count
        for key, count in other.nodata.items():
            self.nodata[key] = self.nodata.get(key, 0) + count

    def describe(self, dataset: ChipDataset) -> str:
        """One line: every value found with its pixel count and meaning."""

        def meaning(value: float) -> str:
            if value in dataset.glacier:
                return "glacier"
            if value in dataset.not_glacier:
                return "not glacier"
            if value in dataset.ignore:
                return "ignore"
            if np.isnan(value):
                return "no label (NaN)"
            return "nodata tag: ignore" if self._tagged(value) else "unknown"

        found = ", ".join(
            f"{_value_text(v)}: {meaning(v)} ({n} px)" for v, n in sorted(self.values.items())
        )
        line = f"mask values found: {found or 'none'}"
        for (value, read_as), count in sorted(self.nodata.items()):
            if read_as != "ignore":
                line += (
                    f"; mask nodata tag {_value_text(value)} is a class value, read as "
                    f"{read_as} ({count} px; list it in {dataset.key('ignore')} to leave it out)"
                )
        return line

    def _tagged(self, value: float) -> bool:
        return any(v == value for v, _ in self.nodata)


_NAN = float("nan")  # one NaN key, so that counts of NaN pixels add up over chips


def _value_text(value: float) -> str:
    return "NaN" if np.isnan(value) else f"{value:g}"


def _read_mask(
    dataset: ChipDataset, files: ChipFiles, grid: Grid
) -> tuple[np.ndarray, MaskReading]:
    """The chip's mask file as 1 / 0 / 255, and what it held.

    Values of ``glacier``, ``not_glacier`` and ``ignore`` (255: no label) map as
    configured; NaN and the file's nodata tag are no label too, unless the tag
    is a class value: GEE exports tag 0 (often "not glacier") as nodata, and
    dropping it would score glacier pixels only. Any other value means the label
    settings do not fit the files: InputDataError naming the file and values.
    """
    assert files.mask is not None
    if not files.mask.is_file():
        raise BadChip(files.image, f"mask {files.mask} not found")
    try:
        with rasterio.open(files.mask) as source:
            mask_grid = Grid.of(source)
            values = source.read(1)
            file_nodata = source.nodata
    except RasterioError as exc:
        raise BadChip(files.image, f"mask {files.mask} unreadable ({exc})") from exc
    if not mask_grid.matches(grid):
        raise BadChip(
            files.image,
            f"mask {files.mask} is on another grid ({mask_grid.describe()}) than its image "
            f"({grid.describe()})",
        )
    found, counts = np.unique(values, return_counts=True)  # NaNs collapse to one entry
    reading = MaskReading(
        {_NAN if np.isnan(v) else float(v): int(n) for v, n in zip(found, counts, strict=True)}
    )
    classes = {*dataset.glacier, *dataset.not_glacier}
    unlabelled = np.isin(values, dataset.ignore)
    if np.issubdtype(values.dtype, np.floating):
        unlabelled |= np.isnan(values)
    if file_nodata is not None and not np.isnan(file_nodata):
        tagged = int(np.count_nonzero(values == file_nodata))
        if file_nodata in classes:
            read_as = "glacier" if file_nodata in dataset.glacier else "not glacier"
        else:
            read_as = "ignore"
            unlabelled |= values == file_nodata
        reading.nodata[(float(file_nodata), read_as)] = tagged
    known = np.isin(values, list(classes)) | unlabelled
    if not known.all():
        unknown = {v: n for v, n in reading.values.items() if not np.isnan(v)}
        unknown = {
            v: n
            for v, n in unknown.items()
            if v not in classes and v not in dataset.ignore and v != file_nodata
        }
        listed = ", ".join(f"{_value_text(v)} ({n} px)" for v, n in sorted(unknown.items()))
        raise InputDataError(
            f"mask {files.mask}: values {listed} are neither glacier {list(dataset.glacier)}, "
            f"not glacier {list(dataset.not_glacier)} nor ignore {list(dataset.ignore)}; "
            f"set {dataset.key('glacier')}, {dataset.key('not_glacier')} or "
            f"{dataset.key('ignore')} to say what they are"
        )
    labels = np.where(np.isin(values, dataset.glacier), GLACIER, NOT_GLACIER).astype(np.uint8)
    labels[unlabelled] = NODATA
    return labels, reading


class OutlineMasks:
    """Rasterises a dataset's outlines onto chips, reading the file once per CRS and date."""

    def __init__(self, dataset: ChipDataset, base_dir: str | Path = ".") -> None:
        assert dataset.outlines is not None
        self.dataset = dataset
        self.file = Path(base_dir) / dataset.outlines["file"]
        self._cache: dict[tuple[str, dt.date | None], gpd.GeoDataFrame] = {}

    def outlines(self, crs: CRS, acquired: dt.date | None) -> gpd.GeoDataFrame:
        key = (crs.to_wkt(), acquired)
        if key not in self._cache:
            spec = self.dataset.outlines or {}
            # The date picks the GLIMS analysis; RGI has one polygon per glacier and
            # ignores it (check_chip_dataset asks GLIMS datasets for a date).
            self._cache[key] = read_outlines(
                self.file,
                acquired,  # type: ignore[arg-type]
                crs,
                layer=spec.get("layer"),
                fmt=spec.get("format", "auto"),
                glaciers=spec.get("glaciers"),
            )
        return self._cache[key]

    def mask(self, grid: Grid, acquired: dt.date | None, nodata: np.ndarray) -> np.ndarray:
        return rasterize_mask(self.outlines(grid.crs, acquired), grid, nodata)


def read_chip(
    dataset: ChipDataset, files: ChipFiles, outline_masks: OutlineMasks | None = None
) -> Chip:
    """Read and check one chip; :class:`BadChip` says why it cannot be used.

    ``outline_masks`` (datasets with outlines) reads the outline file once for many chips.
    """
    acquired = dataset.date_rule.of(files.image)
    bands, grid = _read_image(dataset, files.image)
    nodata = ~np.isfinite(bands).all(axis=0)
    reading = None
    if dataset.outlines is not None:
        outline_masks = outline_masks or OutlineMasks(dataset)
        labels = outline_masks.mask(grid, acquired, nodata)
    else:
        labels, reading = _read_mask(dataset, files, grid)
    labels[nodata] = NODATA
    if not (labels != NODATA).any():
        raise BadChip(files.image, "no pixel has both image data and a label")
    reason = degenerate_reason(ArrayBands(bands), dataset.channels)
    if reason is not None:
        raise BadChip(files.image, reason)
    return Chip(files, bands, labels, grid, acquired, reading)


@dataclass(frozen=True)
class SkippedChip:
    files: ChipFiles
    reason: str


def iter_chips(
    dataset: ChipDataset, images: Sequence[str | Path], base_dir: str | Path = "."
) -> Iterator[Chip | SkippedChip]:
    """Every chip of ``images`` in order, read, or skipped with its reason by the rule
    ``on_bad_chip`` (``error``: the first bad chip stops with an InputDataError)."""
    outline_masks = OutlineMasks(dataset, base_dir) if dataset.outlines is not None else None
    for files in chip_files(dataset, images, base_dir):
        try:
            yield read_chip(dataset, files, outline_masks)
        except BadChip as exc:
            if dataset.on_bad_chip == "error":
                raise InputDataError(
                    f"{exc} ({dataset.key('on_bad_chip')} is error; 'skip' leaves it out)"
                ) from exc
            log.warning("chip skipped: %s: %s", files.image, exc.reason)
            yield SkippedChip(files, exc.reason)


# ---------------------------------------------------------------- tiles


@dataclass
class ChipTiles:
    """The tiles of one chip: images (n, 4, S, S) with nodata and padding 0, masks
    (n, S, S) with 255 there, windows (n, 4) on the chip grid, the pixels with
    image data (n, S, S; for band statistics) and the chip's robust range (n, 4, 2;
    the ``scene`` normalisation's, :func:`glaciermap.data.normalization.scene_range`
    over the whole chip, as prediction measures it)."""

    images: np.ndarray
    masks: np.ndarray
    windows: np.ndarray
    valid: np.ndarray
    ranges: np.ndarray


def cut_chip(
    chip: Chip,
    size: int,
    stride: int,
    max_nodata: float,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> ChipTiles:
    """Tiles of ``size`` at ``stride`` covering the chip; a chip smaller than a tile is
    padded (image 0, mask 255). A tile is kept when at most ``max_nodata`` of the
    chip's own pixels in it are unlabelled (padding does not count)."""
    height, width = chip.grid.shape
    bands = np.nan_to_num(chip.bands, nan=0.0)  # models see nodata as 0, as for scenes
    image_valid = chip.image_valid
    kept = []
    for row in covering_starts(height, size, stride):
        for col in covering_starts(width, size, stride):
            labels = chip.labels[row : row + size, col : col + size]
            if (labels == NODATA).mean() <= max_nodata:
                kept.append((row, col))
    n = len(kept)
    images = np.zeros((n, chip.bands.shape[0], size, size), np.float32)
    masks = np.full((n, size, size), NODATA, np.uint8)
    valid = np.zeros((n, size, size), bool)
    for i, (row, col) in enumerate(kept):
        h, w = min(size, height - row), min(size, width - col)
        images[i, :, :h, :w] = bands[:, row : row + h, col : col + w]
        masks[i, :h, :w] = chip.labels[row : row + h, col : col + w]
        valid[i, :h, :w] = image_valid[row : row + h, col : col + w]
    windows = np.array([(row, col, size, size) for row, col in kept], np.int64).reshape(-1, 4)
    ranges = scene_range(ArrayBands(chip.bands), channels=channels)
    ranges = np.repeat(ranges[None], n, axis=0)
    return ChipTiles(images, masks, windows, valid, ranges)


def _tile_set(
    tiles: Sequence[ChipTiles], chips: Sequence[Chip], size: int, n_channels: int
) -> TileSet:
    n = sum(len(t.windows) for t in tiles)
    crs = [chip.grid.crs.to_wkt() for t, chip in zip(tiles, chips, strict=True) for _ in t.windows]
    transforms = [
        tuple(chip.grid.transform)[:6]
        for t, chip in zip(tiles, chips, strict=True)
        for _ in t.windows
    ]

    def stacked(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        parts = [getattr(t, name) for t in tiles]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    return TileSet(
        images=stacked("images", (n_channels, size, size), np.float32),
        masks=stacked("masks", (size, size), np.uint8),
        windows=stacked("windows", (4,), np.int64),
        crs=np.array(crs, dtype=str).reshape(n),
        transform=np.array(transforms, np.float64).reshape(n, 6),
        ranges=stacked("ranges", (n_channels, 2), np.float32),
    )


# ---------------------------------------------------------------- the rule


@dataclass
class ChipRecord:
    """One row of the dataset's inventory (``chips.csv``)."""

    image: str
    mask: str
    status: Literal["used", "skipped"]
    reason: str = ""
    split: str = ""
    acquired: str = ""
    crs: str = ""
    width: int | str = ""
    height: int | str = ""
    lon: float | str = ""
    lat: float | str = ""
    n_tiles: int | str = ""
    labelled_fraction: float | str = ""
    glacier_fraction: float | str = ""
    fold: int | str = ""  # split kfold: the fold that tests the chip


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def prepare_chips(
    dataset_settings: Mapping[str, Any],
    label: str,
    images: Sequence[str | Path],
    tiles_config: Mapping[str, Any],
    outputs: Mapping[str, str | Path],
    base_dir: str | Path = ".",
    channels: Sequence[str] = DEFAULT_CHANNELS,
    dem: Mapping[str, Any] | None = None,
    fold: int | None = None,
) -> dict[str, int]:
    """Rules ``prepare_chips`` and (with ``fold``) ``prepare_chip_fold``: the tile
    stores of chip dataset ``label``, or of one fold of a ``split: kfold`` dataset
    (its test chips in ``test``, the others split into ``train`` and ``val``).

    Writes ``outputs`` ``train``, ``val``, ``test`` (``.npz`` tile stores, the
    splits the dataset's role gives none of hold 0 tiles), ``stats`` (band
    statistics of the train tiles; null without train tiles) and ``inventory``
    (``chips.csv``: every chip with its split, or the reason it was skipped).
    """
    if dem is not None:
        dem = {**dem, "file": str(Path(base_dir) / dem["file"])}
    dataset = ChipDataset.from_config(label, dataset_settings, channels, dem)
    read = list(iter_chips(dataset, images, base_dir))
    usable = [item for item in read if not isinstance(item, SkippedChip)]
    pixel_m = None
    if needs_pixel_size(dataset.tiles) and usable:
        pixel_m = pixel_size_m([item.grid for item in usable])
    key = f"data.chips.{label}.tiles"
    tiles_config = resolve_tiles(tiles_config, dataset.tiles, pixel_m, key)
    size, stride = tiles_config["size"], tiles_config["stride"]
    max_nodata = tiles_config["max_nodata_fraction"]
    if dataset.tiles:
        log.info("chips %s: tiles of %d px every %d px (%s)", label, size, stride, dataset.tiles)
    chips, tiles, records = [], [], []
    reading = MaskReading()
    pixels: list[tuple[int, int]] = []  # labelled, glacier pixels of each used chip
    for item in read:
        mask = str(item.files.mask or (dataset.outlines or {}).get("file", ""))
        if isinstance(item, SkippedChip):
            records.append(ChipRecord(str(item.files.image), mask, "skipped", item.reason))
            continue
        chip_tiles = cut_chip(item, size, stride, max_nodata, dataset.channels)
        if item.reading is not None:
            reading.add(item.reading)
        labelled = item.labels != NODATA
        if len(chip_tiles.windows):  # a chip without a tile adds nothing to validation
            pixels.append((int(labelled.sum()), int((item.labels == GLACIER).sum())))
        else:
            pixels.append((0, 0))
        chips.append(item)
        tiles.append(chip_tiles)
        records.append(
            ChipRecord(
                str(item.files.image),
                mask,
                "used",
                acquired=item.acquired.isoformat() if item.acquired else "",
                crs=_crs_name(item.grid.crs),
                width=item.grid.width,
                height=item.grid.height,
                n_tiles=len(chip_tiles.windows),
                labelled_fraction=round(float(labelled.mean()), 6),
                glacier_fraction=round(float((item.labels[labelled] == GLACIER).mean()), 6),
            )
        )
    if not chips:
        raise InputDataError(
            f"chip dataset '{label}' ({dataset.key('images')}): none of its {len(records)} "
            "chips is usable (see the log for the reasons)"
        )
    if not any(len(t.windows) for t in tiles):
        raise InputDataError(
            f"chip dataset '{label}': no {size}x{size} tile has at most {max_nodata:.0%} "
            "unlabelled pixels (config key 'data.tiles.max_nodata_fraction')"
        )
    if dataset.masks is not None:
        log.info("chips %s: %s", label, reading.describe(dataset))
    labels = np.concatenate([t.masks[t.masks != NODATA] for t in tiles])
    for value, name in ((GLACIER, "glacier"), (NOT_GLACIER, "not-glacier")):
        if not (labels == value).any():
            log.warning(
                "chip dataset '%s': no %s pixel in any tile: its scores would be undefined "
                "and a model cannot learn from it; check %s",
                label,
                name,
                dataset.key("glacier" if value == GLACIER else "not_glacier"),
            )
    grids = [chip.grid for chip in chips]
    labelled_pixels = [labelled for labelled, _ in pixels]
    glacier_pixels = [glacier for _, glacier in pixels]
    folds = None
    if fold is not None:
        if not dataset.cross_validated or not 0 <= fold < dataset.folds:
            raise ConfigError(f"{dataset.key('split')}: no fold {fold} ({dataset.split})")
        folds, per_fold = fold_splits(
            grids,
            labelled_pixels,
            glacier_pixels,
            dataset.folds,
            dataset.val_fraction,
            dataset.val_block_m,
            dataset.split_seed,
            key=dataset.key("folds"),
        )
        splits = per_fold[fold]
    elif dataset.split in ("train_val", "kfold"):
        # kfold without a fold: the whole dataset's split (the threshold baseline's)
        splits = assign_train_val(
            grids,
            labelled_pixels,
            glacier_pixels,
            dataset.val_fraction,
            dataset.val_block_m,
            dataset.split_seed,
            key=dataset.key("validation"),
        )
    else:
        splits = [dataset.split] * len(chips)
    used = [r for r in records if r.status == "used"]
    for i, (record, split, (lon, lat)) in enumerate(
        zip(used, splits, chip_centres_lonlat(grids), strict=True)
    ):
        record.split, record.lon, record.lat = split, round(lon, 6), round(lat, 6)
        if folds is not None:
            record.fold = int(folds[i])

    sets = {}
    for name in SPLITS:
        chosen = [i for i, split in enumerate(splits) if split == name]
        chosen_tiles, chosen_chips = [tiles[i] for i in chosen], [chips[i] for i in chosen]
        sets[name] = _tile_set(chosen_tiles, chosen_chips, size, len(dataset.channels))
    train = [i for i, split in enumerate(splits) if split == "train"]
    if train:
        stats = band_stats(
            np.concatenate([tiles[i].images for i in train]),
            np.concatenate([tiles[i].valid for i in train]),
            dataset.channels,
        )
    else:
        stats = {"bands": list(dataset.channels), "count": 0, "mean": None, "std": None}
    for name, tile_set in sets.items():
        tile_set.save(outputs[name])
    write_text_atomic(outputs["stats"], json.dumps(stats, indent=2) + "\n")
    write_inventory(records, outputs["inventory"])
    counts = {name: len(tile_set) for name, tile_set in sets.items()}
    skipped = len(records) - len(chips)
    log.info(
        "chips %s: %d used, %d skipped; tiles %s -> %s",
        label,
        len(chips),
        skipped,
        counts,
        Path(outputs["train"]).parent,
    )
    return counts


def write_inventory(records: Sequence[ChipRecord], path: str | Path) -> None:
    """The inventory CSV: one row per chip (used with its split, or skipped with why)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INVENTORY_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({name: getattr(record, name) for name in INVENTORY_COLUMNS})
