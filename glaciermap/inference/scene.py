"""Read the bands a checkpoint needs from one or several rasters, by windows.

A :class:`SceneBands` maps each channel name (blue, green, red, nir, swir16,
elevation...: :mod:`glaciermap.channels`) to a band of a raster file; all files
must share one grid. ``read(window)`` returns (channels, h, w) float32 in the
checkpoint's channel order, with the file's nodata (and NaN, ±inf) as NaN and
``(value + offset) * scale`` applied, so the whole scene is never held in
memory. An index channel (ndsi...) the scene does not hold is computed from its
bands when they are there.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from glaciermap.channels import INDEX_BANDS, normalized_difference
from glaciermap.errors import InputDataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandRef:
    """One band of one file (``index`` is 1-based, as in GDAL)."""

    path: Path
    index: int = 1


def parse_band_spec(spec: str, scene: str | Path | None) -> dict[str, BandRef]:
    """Parse ``blue=1,green=2,...`` (indexes in ``scene``) or ``blue=B02.tif,...``.

    A value may also be ``file:index``. Raises InputDataError on a malformed spec.
    """
    bands: dict[str, BandRef] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputDataError(f"--bands: {item!r} is not NAME=INDEX or NAME=FILE[:INDEX]")
        if value.isdigit():
            if scene is None:
                raise InputDataError(f"--bands: {item!r} gives a band index but no --scene")
            bands[name.strip()] = BandRef(Path(scene), int(value))
            continue
        file, colon, index = value.rpartition(":")
        if colon and index.isdigit():
            bands[name.strip()] = BandRef(Path(file), int(index))
        else:
            bands[name.strip()] = BandRef(Path(value), 1)
    if not bands:
        raise InputDataError("--bands: no band given")
    return bands


class SceneBands:
    """Windowed reader of ``bands`` (in this order) from the rasters in ``refs``."""

    def __init__(
        self,
        refs: Mapping[str, BandRef],
        bands: Sequence[str],
        *,
        scale: float = 1.0,
        offset: float = 0.0,
        nodata: float | None = None,
    ) -> None:
        # Indices the scene lacks but whose bands it has are computed from them.
        index_bands: dict[str, tuple[str, str]] = {k: v for k, v in INDEX_BANDS.items()}
        computed = {
            b: index_bands[b]
            for b in bands
            if b not in refs and b in index_bands and all(n in refs for n in index_bands[b])
        }
        missing = [b for b in bands if b not in refs and b not in computed]
        if missing:
            raise InputDataError(
                f"the scene gives no {', '.join(missing)} band (the checkpoint needs "
                f"{', '.join(bands)}; given: {', '.join(refs) or 'none'})"
            )
        self.bands = list(bands)
        self._computed = computed
        self._names = [b for b in self.bands if b not in computed]
        self._names += [n for pair in computed.values() for n in pair if n not in self._names]
        self.scale = scale
        self.offset = offset
        self.nodata = nodata
        self._stack = contextlib.ExitStack()
        self._datasets: dict[Path, rasterio.DatasetReader] = {}
        self._refs = [refs[b] for b in self._names]
        try:
            for band, ref in zip(self._names, self._refs, strict=True):
                dataset = self._open(ref.path)
                if not 1 <= ref.index <= dataset.count:
                    raise InputDataError(
                        f"{ref.path}: band {band} asks for band {ref.index}, "
                        f"but the file has {dataset.count} band(s)"
                    )
        except BaseException:
            self._stack.close()
            raise
        first = self._datasets[self._refs[0].path]
        for path, dataset in self._datasets.items():
            if dataset.shape != first.shape or dataset.transform != first.transform:
                self._stack.close()
                raise InputDataError(
                    f"{path}: grid {dataset.shape} {tuple(dataset.transform)[:6]} differs from "
                    f"{self._refs[0].path} {first.shape} {tuple(first.transform)[:6]}"
                )
        self.height, self.width = first.shape
        self.crs: CRS | None = first.crs
        self.transform: Affine = first.transform
        self.georeferenced = first.crs is not None and first.transform != Affine.identity()
        if not self.georeferenced:
            log.warning(
                "%s has no georeference (CRS or transform): outputs are on the pixel grid "
                "and areas in km2 are unknown",
                self._refs[0].path,
            )

    def _open(self, path: Path) -> rasterio.DatasetReader:
        if path not in self._datasets:
            if not path.is_file():
                raise InputDataError(f"scene file not found: {path}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    self._datasets[path] = self._stack.enter_context(rasterio.open(path))
            except rasterio.errors.RasterioError as exc:
                raise InputDataError(f"cannot open scene file {path}: {exc}") from exc
        return self._datasets[path]

    def read(self, window: Window) -> np.ndarray:
        read = np.empty((len(self._refs), int(window.height), int(window.width)), np.float32)
        for i, ref in enumerate(self._refs):
            dataset = self._datasets[ref.path]
            try:
                data = dataset.read(ref.index, window=window, masked=True).astype(np.float32)
            except rasterio.errors.RasterioError as exc:
                raise InputDataError(
                    f"cannot read scene file {ref.path} (truncated or damaged?): {exc}"
                ) from exc
            values = (data.filled(np.nan) + self.offset) * self.scale
            if self.nodata is not None:
                values[data.data == self.nodata] = np.nan
            values[~np.isfinite(values)] = np.nan  # ±inf is nodata exactly like NaN
            read[i] = values
        if not self._computed:
            return read
        values_of = dict(zip(self._names, read, strict=True))
        for index, (a, b) in self._computed.items():
            values_of[index] = normalized_difference(values_of[a], values_of[b])
        return np.stack([values_of[b] for b in self.bands])

    @property
    def name(self) -> str:
        """The scene's file(s), for messages."""
        return ", ".join(dict.fromkeys(str(ref.path) for ref in self._refs))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> SceneBands:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def band_names_of(path: str | Path) -> list[str] | None:
    """The band descriptions of a raster, or None when any band has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            descriptions = list(dataset.descriptions)
    if not all(descriptions):
        return None
    return [str(d).lower() for d in descriptions]


def open_workflow_scene(path: str | Path, bands: Sequence[str]) -> SceneBands:
    """Open ``results/scenes/{date}.tif``: bands by description, else blue,green,red,nir."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"scene file not found: {path}")
    names = band_names_of(path) or ["blue", "green", "red", "nir"]
    refs = {name: BandRef(path, i + 1) for i, name in enumerate(names)}
    return SceneBands(refs, bands)
