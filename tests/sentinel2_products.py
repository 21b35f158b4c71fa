"""Sentinel-2 L2A-shaped products made by the tests: a SAFE folder with 10 m
band files (``*_B02_10m.jp2`` ...) holding DNs with the +1000 offset of
processing baseline 05.09, optionally 20 m band files (``*_B11_20m.jp2`` ...),
and a 20 m ``*_SCL_20m.jp2`` Scene Classification.

The files are JPEG 2000 (lossless), as in real products; their names carry the
band ids and the baseline that the workflow reads from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

BAND_IDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
BAND_IDS_20M = {
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
}
OFFSET = 1000  # DN = reflectance * 10000 + 1000 from baseline 04.00 on

# SCL classes used by the tests.
SCL_NO_DATA, SCL_SHADOW, SCL_NOT_VEGETATED = 0, 3, 5
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 8, 9, 10, 11


def _write_jp2(path: Path, array: np.ndarray, crs: str, transform: Affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "JP2OpenJPEG",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "QUALITY": 100,
        "REVERSIBLE": "YES",
    }
    with rasterio.open(path, "w", **profile) as out:
        out.write(array, 1)


def write_product(
    base: Path,
    tile: str,
    day: str,
    dn: np.ndarray,
    scl: np.ndarray,
    transform: Affine,
    crs: str = "EPSG:32645",
    dn_20m: dict[str, np.ndarray] | None = None,
) -> dict:
    """Write one L2A product under ``base``; return its scene input (paths relative
    to ``base``): ``{"bands": {...}, "validity": {"scl": ...}}``.

    ``dn``: (4, H, W) uint16 blue, green, red, nir on the 10 m grid ``transform``;
    ``scl``: (H / 2, W / 2) uint8 classes on the 20 m grid with the same origin;
    ``dn_20m``: 20 m bands by name (``swir16``: (H / 2, W / 2) uint16 DNs, B11) on it too.
    """
    safe = f"S2A_MSIL2A_{day}T141741_N0509_R010_T{tile}_{day}T200000.SAFE"
    img = Path(safe) / "GRANULE" / f"L2A_T{tile}_A000001_{day}T141741" / "IMG_DATA"
    stem = f"T{tile}_{day}T141741"
    bands = {}
    for i, (band, code) in enumerate(BAND_IDS.items()):
        relative = img / "R10m" / f"{stem}_{code}_10m.jp2"
        _write_jp2(base / relative, dn[i].astype(np.uint16), crs, transform)
        bands[band] = str(relative)
    scl_relative = img / "R20m" / f"{stem}_SCL_20m.jp2"
    coarse = Affine(transform.a * 2, 0, transform.c, 0, transform.e * 2, transform.f)
    for band, values in (dn_20m or {}).items():
        relative = img / "R20m" / f"{stem}_{BAND_IDS_20M[band]}_20m.jp2"
        _write_jp2(base / relative, values.astype(np.uint16), crs, coarse)
        bands[band] = str(relative)
    _write_jp2(base / scl_relative, scl.astype(np.uint8), crs, coarse)
    return {"bands": bands, "validity": {"scl": str(scl_relative)}}


def reflectance(dn: np.ndarray) -> np.ndarray:
    """What the workflow makes of baseline-05.09 DNs: (DN - 1000) / 10000, NaN at DN 0."""
    values = (dn.astype(np.float64) - OFFSET) / 10000
    return np.where(dn == 0, np.nan, values).astype(np.float32)


def upsample(scl: np.ndarray) -> np.ndarray:
    """20 m classes on the 10 m grid: each covers its 2 x 2 pixels (nearest neighbour)."""
    return np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)
