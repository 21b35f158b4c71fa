"""Small generated chip folders for the chip-dataset tests (not a test file).

A chip is placed by the lon/lat of its centre in any CRS, so that chips of one
site from two years, or in two CRSs, cover the same ground. Images are uint16
DNs (reflectance x 10000) with nodata 0 in the first two columns; glacier (a
disk around the centre) is bright in every band, the rest dark. Masks hold 1
glacier, 0 not and 255 ("ignore") in a small square.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import write_geotiff
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from glaciermap.io.grid import Grid

SCALE = 1e-4  # DN -> reflectance
NODATA_DN = 0
IGNORE = 255
NODATA_COLUMNS = 2
IGNORE_BOX = (slice(1, 4), slice(-4, -1))  # rows, cols of the mask set to IGNORE
# Pixel size per CRS: metres, or degrees for lon/lat.
PIXEL = {"EPSG:4326": 1e-4}


@dataclass(frozen=True)
class ChipSpec:
    stem: str
    lon: float
    lat: float
    crs: str = "EPSG:32632"
    shape: tuple[int, int] = (48, 48)
    seed: int = 0

    @property
    def pixel(self) -> float:
        return PIXEL.get(self.crs, 10.0)

    def grid(self) -> Grid:
        (x,), (y,) = warp_transform("EPSG:4326", self.crs, [self.lon], [self.lat])
        height, width = self.shape
        west, north = x - width / 2 * self.pixel, y + height / 2 * self.pixel
        return Grid(CRS.from_user_input(self.crs), from_origin(west, north, self.pixel, self.pixel),
                    width, height)  # fmt: skip


def chip_arrays(spec: ChipSpec) -> tuple[np.ndarray, np.ndarray]:
    """(4, H, W) uint16 DNs and (H, W) uint8 mask of one chip."""
    rng = np.random.default_rng(spec.seed)
    height, width = spec.shape
    rows, cols = np.mgrid[:height, :width]
    radius = min(height, width) * rng.uniform(0.2, 0.35)
    glacier = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < radius**2
    dark = rng.integers(600, 1800, (4, height, width))
    bright = rng.integers(5500, 8000, (4, height, width))
    dn = np.where(glacier, bright, dark).astype(np.uint16)
    dn[:, :, :NODATA_COLUMNS] = NODATA_DN
    mask = glacier.astype(np.uint8)
    mask[IGNORE_BOX] = IGNORE
    return dn, mask


def write_raster(path: Path, array: np.ndarray, grid: Grid, nodata=None) -> Path:
    """A GeoTIFF on ``grid`` (conftest's writer, the package's profile)."""
    return write_geotiff(path, array, crs=grid.crs, transform=grid.transform, nodata=nodata)


def write_chip(root: Path, spec: ChipSpec, images: str = "images", masks: str = "masks") -> Path:
    """``root/images/{stem}.tif`` (uint16, nodata 0) and ``root/masks/{stem}.tif``."""
    dn, mask = chip_arrays(spec)
    grid = spec.grid()
    write_raster(root / masks / f"{spec.stem}.tif", mask, grid)
    return write_raster(root / images / f"{spec.stem}.tif", dn, grid, nodata=NODATA_DN)


def dataset_block(root: Path, split: str = "test", **extra) -> dict:
    """The config block ``data.chips.<label>`` of a folder written by :func:`write_chip`."""
    return {
        "images": f"{root}/images/*.tif",
        "masks": f"{root}/masks/{{stem}}.tif",
        "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
        "scale": SCALE,
        "nodata": NODATA_DN,
        "ignore": [IGNORE],
        "split": split,
        **extra,
    }


# Sites ~1.5 km apart along a line near 10.5 E, 46.5 N (UTM 32N); chips of 48 px
# at 10 m are 480 m wide, so chips of different sites never share ground.
def site(i: int) -> tuple[float, float]:
    return 10.5 + 0.02 * (i % 5), 46.5 + 0.015 * (i // 5)
