"""The inputs of one date: each a product (a SAFE, a set of band files, a
downloaded file) with its spectral bands, reading rules and validity source.

A date's config entry is one input (``bands`` with ``file``, ``product``...)
or a list of them (``inputs:``, e.g. two overlapping Sentinel-2 tiles of the
same day), which :mod:`glaciermap.io.scenes` merges. An input of a list takes
``product``, ``processing_baseline``, ``scale``, ``offset`` and ``nodata``
from the date's entry unless it sets its own; ``validity`` is per input.

Values become float32 reflectance-like numbers with NaN as nodata:

- ``generic``: (DN + offset) * scale; ``nodata`` from the config or the file.
- ``sentinel2_l2a``: (DN + offset) / 10000 with offset -1000 from processing
  baseline 04.00 on (read from the config or the SAFE name ``N0400``); DN 0 = nodata.
  The same for the 20 m bands (B05-B07, B8A, B11, B12).

An input's grid is that of its grid band (blue if configured, else its first
band). A band of the input at another resolution (the 20 m bands of a
Sentinel-2 product beside its 10 m ones) is resampled bilinearly onto the
target grid whatever ``data.on_grid_mismatch`` says: that setting is about
scenes on another grid, not about the bands of one product.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from glaciermap.channels import SPECTRAL
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.grid import Grid, place_on_grid
from glaciermap.io.validity import ValiditySource, validity_source

# Keys of a date entry that the inputs of its ``inputs:`` list inherit.
INHERITED_KEYS = ("product", "processing_baseline", "scale", "offset", "nodata")


@dataclass(frozen=True)
class BandSource:
    """One band of a scene: the file, the 1-based band index and the config key naming it."""

    file: Path
    band: int
    key: str
    single_band_file: bool  # configured as a bare path: the file must hold exactly one band


@dataclass(frozen=True)
class SceneInput:
    """One input of date ``date``: its settings (inherited keys filled in) and config key."""

    date: str
    settings: Mapping[str, Any]
    key: str  # data.scenes.{date} or data.scenes.{date}.inputs.{i}

    @property
    def product(self) -> str:
        return self.settings.get("product", "generic")

    def band_names(self) -> tuple[str, ...]:
        """The configured bands, in the vocabulary's order."""
        return tuple(name for name in SPECTRAL if name in self.settings["bands"])

    @property
    def grid_band(self) -> str:
        """The band whose grid is the input's: blue if configured, else the first."""
        names = self.band_names()
        return "blue" if "blue" in names else names[0]

    def band_sources(
        self, base_dir: str | Path = ".", names: Sequence[str] | None = None
    ) -> dict[str, BandSource]:
        """The band mapping resolved to files and band indices: of ``names`` (in
        that order, ConfigError naming a band the input lacks), default every
        configured band."""
        base = Path(base_dir)
        configured = self.settings["bands"]
        names = self.band_names() if names is None else names
        missing = [name for name in names if name not in configured]
        if missing:
            raise ConfigError(
                f"config key '{self.key}.bands': no {', '.join(missing)} band, which "
                "config key 'data.channels' needs"
            )
        sources: dict[str, BandSource] = {}
        for name in names:
            source = configured[name]
            key = f"{self.key}.bands.{name}"
            if isinstance(source, int):
                if "file" not in self.settings:
                    raise ConfigError(f"config key '{key}': a band index needs '{self.key}.file'")
                sources[name] = BandSource(base / self.settings["file"], source, key, False)
            elif isinstance(source, str):
                sources[name] = BandSource(base / source, 1, key, True)
            else:
                sources[name] = BandSource(base / source["file"], source.get("band", 1), key, False)
        return sources

    def validity(self, base_dir: str | Path = ".") -> ValiditySource | None:
        return validity_source(self.settings.get("validity"), f"{self.key}.validity", base_dir)

    def files(self, base_dir: str | Path = ".", names: Sequence[str] | None = None) -> list[Path]:
        """Every file the input reads (bands ``names``, default all): band files,
        then its validity raster."""
        files = [source.file for source in self.band_sources(base_dir, names).values()]
        validity = self.validity(base_dir)
        if validity is not None:
            files.append(validity.file)
        return list(dict.fromkeys(files))

    def band_set(
        self, base_dir: str | Path = ".", names: Sequence[str] | None = None
    ) -> tuple[Any, ...]:
        """What must agree between the inputs of a mosaic: the product, the
        Sentinel-2 band id of each band (``names``, default all) where its file
        name gives one, and the kind of validity source (an SCL band is part of
        the band set)."""
        sources = self.band_sources(base_dir, names)
        validity = self.validity(base_dir)
        return (
            self.product,
            tuple((name, sentinel2.band_id_from_name(s.file)) for name, s in sources.items()),
            validity.kind if validity is not None else None,
        )

    def describe(self, base_dir: str | Path = ".") -> str:
        """A short name: the SAFE product or the grid band's file."""
        file = self.band_sources(base_dir, [self.grid_band])[self.grid_band].file
        return sentinel2.safe_name(file) or str(file)


def scene_inputs(scene: Mapping[str, Any], date: str) -> list[SceneInput]:
    """The inputs of the date entry ``scene`` (``data.scenes.{date}``), in config order."""
    key = f"data.scenes.{date}"
    if "inputs" not in scene:
        return [SceneInput(date, scene, key)]
    for misplaced in ("file", "bands", "validity"):
        if misplaced in scene:
            raise ConfigError(
                f"config key '{key}.{misplaced}': with '{key}.inputs' every input gives "
                f"its own '{misplaced}'"
            )
    inherited = {name: scene[name] for name in INHERITED_KEYS if name in scene}
    return [
        SceneInput(date, {**inherited, **entry}, f"{key}.inputs.{i}")
        for i, entry in enumerate(scene["inputs"])
    ]


@contextlib.contextmanager
def open_raster(path: Path, key: str) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster, turning GDAL failures into an error naming the file and config key."""
    try:
        with rasterio.open(path) as dataset:
            yield dataset
    except RasterioError as exc:
        raise InputDataError(f"cannot read raster {path} (config key '{key}'): {exc}") from exc


# Preparing a date reads its bands whole: about this many bytes per pixel of the
# grid (four float32 bands, a reprojected or mosaicked copy and the masks).
PREPARE_BYTES_PER_PIXEL = 40


def memory_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_fits_in_memory(dataset: rasterio.io.DatasetReader, path: Path, key: str) -> None:
    """Refuse, from the header alone, a raster too large to read whole (a declared-huge
    sparse file would otherwise be read for minutes before failing)."""
    need = dataset.width * dataset.height * PREPARE_BYTES_PER_PIXEL
    have = memory_bytes()
    if need > have:
        raise InputDataError(
            f"raster {path} (config key '{key}') declares {dataset.width}x{dataset.height} "
            f"pixels: preparing it needs about {need / 2**30:.0f} GiB, more than this machine's "
            f"{have / 2**30:.0f} GiB; crop it, or map it with 'glaciermap predict' (by windows)"
        )


def check_band(dataset: rasterio.io.DatasetReader, source: BandSource) -> None:
    """Refuse a file that lacks the configured band or a georeference, or is too large."""
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
    require_fits_in_memory(dataset, source.file, source.key)


def input_grid(scene_input: SceneInput, base_dir: str | Path = ".") -> Grid:
    """The grid of an input: that of its grid band (blue if configured)."""
    name = scene_input.grid_band
    source = scene_input.band_sources(base_dir, [name])[name]
    with open_raster(source.file, source.key) as dataset:
        check_band(dataset, source)
        return Grid.of(dataset)


def _to_reflectance(
    raw: np.ndarray, file_nodata: float | None, scene_input: SceneInput, source: BandSource
) -> np.ndarray:
    settings = scene_input.settings
    if scene_input.product == "sentinel2_l2a":
        baseline = settings.get("processing_baseline") or sentinel2.baseline_from_name(source.file)
        if baseline is None:
            raise ConfigError(
                f"config key '{scene_input.key}.processing_baseline': not set and not found "
                f"in the file name {source.file} (expected a SAFE name with _N0400_ or similar)"
            )
        nodata: float | None = sentinel2.NODATA_DN
        values = (raw + sentinel2.reflectance_offset(baseline)) / sentinel2.QUANTIFICATION_VALUE
    else:
        configured = settings.get("nodata")
        nodata = configured if configured is not None else file_nodata
        values = (raw + settings.get("offset", 0.0)) * settings.get("scale", 1.0)
    values = values.astype(np.float32)
    if nodata is not None:
        values[raw == nodata] = np.nan
    values[~np.isfinite(raw)] = np.nan
    return values


def _align(
    values: np.ndarray,
    grid: Grid,
    target: Grid,
    on_mismatch: str,
    what: str,
    product_grid: Grid | None = None,
) -> np.ndarray:
    if grid.matches(target):
        return values
    # A coarser band of a product on the target's lattice (20 m beside 10 m) is
    # resampled: only the product's own grid can be "another grid".
    own = product_grid if product_grid is not None else grid
    if own.offset_in(target) is None and on_mismatch == "error":
        raise InputDataError(
            f"{what} is on another grid ({grid.describe()}) than the reference "
            f"({target.describe()}); set config key 'data.on_grid_mismatch: reproject' to "
            "reproject it"
        )
    return place_on_grid(values, grid, target, fill=np.nan)


def read_input_bands(
    scene_input: SceneInput,
    target: Grid,
    base_dir: str | Path = ".",
    on_mismatch: str = "reproject",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Bands ``names`` (default all configured) of one input on ``target`` as
    float32 (B, H, W), NaN = nodata.

    A band on the target's pixel lattice is copied; one on another grid is
    reprojected (bilinear) or refused by ``on_mismatch``; a band at another
    resolution than the input's grid band is always resampled bilinearly.
    """
    product_grid = input_grid(scene_input, base_dir)
    bands = []
    for name, source in scene_input.band_sources(base_dir, names).items():
        with open_raster(source.file, source.key) as dataset:
            check_band(dataset, source)
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
        values = _to_reflectance(raw, file_nodata, scene_input, source)
        what = f"band {name} of scene '{scene_input.date}' ({source.file})"
        bands.append(_align(values, grid, target, on_mismatch, what, product_grid))
    return np.stack(bands)


def require_one_band_set(
    inputs: Sequence[SceneInput], base_dir: str | Path = ".", names: Sequence[str] | None = None
) -> None:
    """Refuse a mosaic whose inputs differ in product, band ids or validity source
    (of bands ``names``, default every band the first input configures)."""
    names = inputs[0].band_names() if names is None else names
    first = inputs[0].band_set(base_dir, names)
    for other in inputs[1:]:
        theirs = other.band_set(base_dir, names)
        if theirs == first:
            continue
        if theirs[0] != first[0]:
            differs = f"product {theirs[0]} where", f"has {first[0]}"
        elif theirs[2] != first[2]:
            differs = (
                f"validity source {theirs[2] or 'none'} where",
                f"has {first[2] or 'none'}",
            )
        else:
            name, mine, their_id = next(
                (b, f[1], t[1])
                for b, f, t in zip(names, first[1], theirs[1], strict=True)
                if f != t
            )
            differs = f"{their_id or 'an unnamed band'} as {name} where", f"has {mine or 'none'}"
        raise ConfigError(
            f"config key '{other.key}': the inputs of a mosaic must have one band set, but "
            f"{other.describe(base_dir)} has {differs[0]} '{inputs[0].key}' "
            f"({inputs[0].describe(base_dir)}) {differs[1]}"
        )
