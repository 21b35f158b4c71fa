"""The one GeoTIFF creation profile every raster writer of the package uses.

Georeferencing comes from a :class:`~glaciermap.io.grid.Grid`, so no output
can lose its CRS or transform by accident. Rasters are deflate-compressed with
the predictor that suits their type, tiled in 256-px blocks when they are at
least that large (windowed reads and QGIS stay fast), and become BigTIFF when
they could outgrow 4 GB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glaciermap.io.grid import Grid

BLOCK = 256


def geotiff_profile(
    grid: Grid,
    dtype: str,
    count: int = 1,
    nodata: float | int | None = None,
    *,
    tiled: bool | None = None,
) -> dict[str, Any]:
    """Creation options of a ``count``-band GeoTIFF of ``dtype`` on ``grid``.

    ``tiled=None`` tiles rasters of at least one block a side and leaves smaller
    ones in strips (GDAL refuses tiles larger than the raster in some drivers).
    """
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "height": grid.height,
        "width": grid.width,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if floating else 2,
        "BIGTIFF": "IF_SAFER",
    }
    if tiled is None:
        tiled = grid.width >= BLOCK and grid.height >= BLOCK
    if tiled:
        profile.update(tiled=True, blockxsize=BLOCK, blockysize=BLOCK)
    return profile
