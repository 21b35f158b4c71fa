"""A raster grid (CRS, transform, shape) and putting arrays onto another grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import DatasetReader
from rasterio.warp import Resampling, reproject, transform_bounds

LONLAT = CRS.from_epsg(4326)


@dataclass(frozen=True)
class Grid:
    """Where the pixels of a raster lie on the map."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, dataset: DatasetReader) -> Grid:
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid's CRS."""
        xs, ys = zip(
            *(self.transform @ corner for corner in ((0, 0), (self.width, self.height))),
            strict=True,
        )
        return (min(xs), min(ys), max(xs), max(ys))

    def lonlat_bbox(self) -> tuple[float, float, float, float]:
        """The grid's envelope in lon/lat (for STAC and GLIMS queries)."""
        return transform_bounds(self.crs, LONLAT, *self.bounds, densify_pts=21)

    def matches(self, other: Grid, tolerance: float = 1e-6) -> bool:
        """True when both grids put the same pixels at the same map coordinates."""
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and self.transform.almost_equals(other.transform, precision=tolerance)
        )

    def describe(self) -> str:
        a, _, c, _, e, f = tuple(self.transform)[:6]
        size = f"{self.width}x{self.height} px of {a:g}x{-e:g}"
        return f"{self.crs.to_string()} {size} at ({c:g}, {f:g})"


def reproject_to_grid(
    array: np.ndarray, source: Grid, target: Grid, resampling: Resampling = Resampling.bilinear
) -> np.ndarray:
    """Reproject a float 2-D array (NaN = nodata) from ``source`` onto ``target``."""
    out = np.full(target.shape, np.nan, dtype=np.float32)
    reproject(
        source=array.astype(np.float32, copy=False),
        destination=out,
        src_transform=source.transform,
        src_crs=source.crs,
        src_nodata=np.nan,
        dst_transform=target.transform,
        dst_crs=target.crs,
        dst_nodata=np.nan,
        resampling=resampling,
    )
    return out
