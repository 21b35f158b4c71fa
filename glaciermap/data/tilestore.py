"""The tile store: all tiles of one date and split in one compressed ``.npz`` file.

Arrays (docs/architecture.md): ``images`` float32 (N, C, S, S) of the C channels
(``data.channels``, named in the date's ``stats.json``), ``masks`` uint8
(N, S, S), ``windows`` int64 (N, 4) = (row_off, col_off, height, width) in the
scene grid, ``crs`` WKT (0-d str) and ``transform`` float64 (6,) of the scene,
and ``ranges`` float32 (N, C, 2): the robust range (2nd, 98th percentile) of
each band over the scene or chip the tile was cut from, which the ``scene``
normalisation scales each tile with (:mod:`glaciermap.data.normalization`).
Tiles cut from chips (:mod:`glaciermap.data.chips`), each chip on its own grid,
store the georeference per tile instead: ``crs`` (N,) WKT and ``transform``
(N, 6), the grid of the chip that tile ``i``'s window refers to.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from glaciermap.errors import InputDataError
from glaciermap.utils.atomic import atomic_path

_ARRAYS = ("images", "masks", "windows", "crs", "transform", "ranges")


@dataclass
class TileSet:
    """Tiles of one scene with the georeference needed to put them back on the map."""

    images: np.ndarray
    masks: np.ndarray
    windows: np.ndarray
    crs: str | np.ndarray  # WKT of the scene, or (N,) WKT of each tile's chip
    transform: np.ndarray  # (6,) of the scene, or (N, 6) of each tile's chip
    ranges: np.ndarray

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images, dtype=np.float32)
        self.masks = np.asarray(self.masks, dtype=np.uint8)
        self.windows = np.asarray(self.windows, dtype=np.int64).reshape(-1, 4)
        self.transform = np.asarray(self.transform, dtype=np.float64)[..., :6]
        n = len(self.windows)
        if not isinstance(self.crs, str):
            self.crs = np.asarray(self.crs, dtype=str).reshape(-1)
            if len(self.crs) != n or self.transform.shape != (n, 6):
                raise ValueError(
                    f"per-tile georeference needs {n} CRSs and ({n}, 6) transforms, got "
                    f"{self.crs.shape} and {self.transform.shape}"
                )
        self.ranges = np.asarray(self.ranges, dtype=np.float32)
        if self.ranges.ndim == 2:  # one scene: the same range for every tile
            self.ranges = np.repeat(self.ranges[None], n, axis=0)
        if (
            self.images.ndim != 4
            or len(self.images) != n
            or self.masks.shape
            != (
                n,
                *self.images.shape[2:],
            )
        ):
            raise ValueError(
                f"inconsistent tile arrays: images {self.images.shape}, masks "
                f"{self.masks.shape}, windows {self.windows.shape}"
            )
        if self.ranges.shape != (n, self.images.shape[1], 2):
            raise ValueError(f"ranges {self.ranges.shape} do not fit images {self.images.shape}")

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def per_tile(self) -> bool:
        """True when each tile carries its own grid (tiles of chips)."""
        return not isinstance(self.crs, str)

    @property
    def scene_transform(self) -> Affine:
        if self.per_tile:
            raise ValueError("tiles of chips have no common scene transform; use tile_transform")
        return Affine(*self.transform)

    def tile_crs(self, i: int) -> str:
        """The CRS (WKT) of tile ``i``."""
        return str(self.crs[i]) if self.per_tile else str(self.crs)

    def tile_transform(self, i: int) -> Affine:
        """The affine transform of tile ``i``: its pixel (0, 0) is the window's corner."""
        row, col, height, width = (int(v) for v in self.windows[i])
        grid = Affine(*self.transform[i]) if self.per_tile else self.scene_transform
        return window_transform(Window(col, row, width, height), grid)

    def save(self, path: str | Path) -> None:
        """Write the tile set as a compressed ``.npz``, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                images=self.images,
                masks=self.masks,
                windows=self.windows,
                crs=np.array(self.crs),
                transform=self.transform,
                ranges=self.ranges,
            )

    @classmethod
    def load(cls, path: str | Path) -> TileSet:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [name for name in _ARRAYS if name not in data]
                if missing:
                    raise InputDataError(
                        f"tile file {path} lacks {', '.join(missing)} (written by an older "
                        "glaciermap? delete it and prepare the tiles again)"
                    )
                return cls(
                    images=data["images"],
                    masks=data["masks"],
                    windows=data["windows"],
                    crs=str(data["crs"]) if data["crs"].ndim == 0 else data["crs"],
                    transform=data["transform"],
                    ranges=data["ranges"],
                )
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise InputDataError(f"cannot read tile file {path}: {exc}") from exc
