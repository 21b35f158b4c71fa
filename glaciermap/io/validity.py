"""Which pixels of a scene were seen: cloud, shadow and defect masks per input.

A scene input may name a validity source (config key ``validity``):

- ``scl``: the Sentinel-2 L2A Scene Classification band (``*_SCL_20m.jp2``).
  Pixels of the classes ``invalid`` (default
  :data:`glaciermap.io.sentinel2.INVALID_SCL_CLASSES`: no data, saturated or
  defective, cloud shadow, cloud, thin cirrus) are invalid. A value outside
  0-11 is not an SCL class and is refused.
- ``mask``: a raster of your own (e.g. s2cloudless, Fmask, hand-drawn); pixels
  whose value is in ``invalid`` are invalid, by default every non-zero value.

The source is put onto the scene's grid by nearest neighbour (the 20 m SCL
onto 10 m bands: each 20 m class covers its four 10 m pixels). It must cover
every pixel where the input has data.

Each date's result is written as ``results/validity/{date}.tif`` with the codes
:data:`NO_DATA` (no input has data there), :data:`VALID` (seen: the pixel is in
the scene) and :data:`MASKED` (data, but invalid: cloud, shadow, defect). Only
valid pixels are observed; the scene is NaN everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid, place_on_grid
from glaciermap.utils.atomic import atomic_path

ValidityKind = Literal["scl", "mask"]
VALIDITY_KINDS: tuple[ValidityKind, ...] = ("scl", "mask")

# Codes of results/validity/{date}.tif.
NO_DATA = 0
VALID = 1
MASKED = 2
_OUTSIDE = -1  # a target pixel the validity source does not reach


@dataclass(frozen=True)
class ValiditySource:
    """A validity raster of one scene input: its kind, band and invalid values."""

    kind: ValidityKind
    file: Path
    band: int
    invalid: tuple[int, ...] | None  # None: a mask's every non-zero value
    key: str  # the config key naming it, e.g. data.scenes.july.validity

    @property
    def invalid_values(self) -> tuple[int, ...] | None:
        if self.invalid is not None:
            return self.invalid
        return sentinel2.INVALID_SCL_CLASSES if self.kind == "scl" else None


def validity_source(
    settings: Mapping[str, Any] | None, key: str, base_dir: str | Path = "."
) -> ValiditySource | None:
    """The ``validity`` entry of a scene input (``{scl|mask: path or {file, band},
    invalid}``) resolved against ``base_dir``, or None when there is none."""
    if not settings:
        return None
    kind: ValidityKind = "scl" if "scl" in settings else "mask"
    source = settings[kind]
    file, band = (source, 1) if isinstance(source, str) else (source["file"], source.get("band", 1))
    invalid = settings.get("invalid")
    if kind == "scl" and invalid is not None:
        unknown = sorted(set(invalid) - set(sentinel2.SCL_CLASSES))
        if unknown:
            raise ConfigError(
                f"config key '{key}.invalid': {unknown} are not Scene Classification classes (0-11)"
            )
    return ValiditySource(
        kind,
        Path(base_dir) / file,
        int(band),
        None if invalid is None else tuple(int(v) for v in invalid),
        f"{key}.{kind}",
    )


def check_validity_source(source: ValiditySource) -> None:
    """Open the header: readable, band present, georeferenced (no pixels read)."""
    with _open(source) as dataset:
        _check_header(dataset, source)


def _open(source: ValiditySource) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(source.file)
    except RasterioError as exc:
        raise InputDataError(
            f"cannot read validity raster {source.file} (config key '{source.key}'): {exc}"
        ) from exc


def _check_header(dataset: rasterio.io.DatasetReader, source: ValiditySource) -> None:
    if source.band > dataset.count:
        raise InputDataError(
            f"validity raster {source.file} (config key '{source.key}') has {dataset.count} "
            f"band(s), band {source.band} is missing"
        )
    if dataset.crs is None:
        raise InputDataError(
            f"validity raster {source.file} (config key '{source.key}') has no CRS "
            "(not georeferenced, or truncated)"
        )
    if not np.issubdtype(np.dtype(dataset.dtypes[source.band - 1]), np.integer):
        raise InputDataError(
            f"validity raster {source.file} (config key '{source.key}') holds "
            f"{dataset.dtypes[source.band - 1]} values; classes and masks are integers"
        )


def _read_classes(source: ValiditySource) -> tuple[np.ndarray, Grid]:
    with _open(source) as dataset:
        _check_header(dataset, source)
        try:
            values = dataset.read(source.band)
        except RasterioError as exc:
            raise InputDataError(
                f"cannot read validity raster {source.file} (config key '{source.key}'), "
                f"the file may be truncated: {exc}"
            ) from exc
        grid = Grid.of(dataset)
    if source.kind == "scl":
        unknown = np.setdiff1d(np.unique(values), list(sentinel2.SCL_CLASSES))
        if unknown.size:
            shown = ", ".join(str(v) for v in unknown[:8]) + (" ..." if unknown.size > 8 else "")
            raise InputDataError(
                f"SCL raster {source.file} (config key '{source.key}') holds values {shown} "
                "outside the Scene Classification classes 0-11: is it the SCL band "
                "(*_SCL_20m.jp2)?"
            )
    return values, grid


@dataclass(frozen=True)
class InvalidPixels:
    """What a validity source says on the scene grid."""

    invalid: np.ndarray  # bool (H, W): cloud, shadow, defect... per the source
    covered: np.ndarray  # bool (H, W): the source reaches the pixel
    source: ValiditySource
    cloudy_fraction: float  # invalid share of the pixels it classifies (SCL: no-data class aside)

    def require_covers(self, has_data: np.ndarray, what: str) -> None:
        """Refuse a source that leaves pixels with data of ``what`` unclassified."""
        missing = has_data & ~self.covered
        if missing.any():
            raise InputDataError(
                f"validity raster {self.source.file} (config key '{self.source.key}') does "
                f"not cover {what}: {int(missing.sum())} pixel(s) with data "
                f"({missing.mean():.1%} of the scene grid) lie outside it; give the "
                "validity raster of the same product or tile"
            )


def read_invalid(source: ValiditySource, target: Grid) -> InvalidPixels:
    """The source's invalid pixels on ``target`` (nearest neighbour)."""
    values, grid = _read_classes(source)
    classes = place_on_grid(
        values.astype(np.int32), grid, target, fill=_OUTSIDE, resampling=Resampling.nearest
    )
    covered = classes != _OUTSIDE
    wanted = source.invalid_values
    invalid = (np.isin(classes, wanted) if wanted is not None else classes != 0) & covered
    # How cloudy the input is, to rank the inputs of a mosaic: among the pixels it
    # classifies, not counting where an SCL says the product has no data at all.
    seen = covered & (classes != 0) if source.kind == "scl" else covered
    cloudy = float((invalid & seen).sum() / seen.sum()) if seen.any() else 1.0
    return InvalidPixels(invalid, covered, source, cloudy)


def write_validity(codes: np.ndarray, grid: Grid, path: str | Path) -> None:
    """Write ``results/validity/{date}.tif`` (uint8 :data:`NO_DATA`, :data:`VALID`,
    :data:`MASKED`; no nodata value: every pixel has a code) atomically."""
    profile = geotiff_profile(grid, "uint8", nodata=None)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(codes.astype(np.uint8, copy=False), 1)
        out.update_tags(codes=f"{NO_DATA}=no data,{VALID}=valid,{MASKED}=masked")
