"""A raster grid (CRS, transform, shape) and putting arrays onto another grid.

Two grids on one pixel lattice (same CRS and pixel size, origins a whole number
of pixels apart, e.g. two Sentinel-2 tiles of one UTM zone) share pixels: an
array moves from one to the other by copying. Any other pair needs resampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

    def offset_in(self, other: Grid, tolerance: float = 1e-6) -> tuple[int, int] | None:
        """(row, col) of this grid's first pixel in ``other`` when both share one pixel
        lattice (same CRS, same north-up pixel size, whole-pixel offset), else None."""
        s, o = self.transform, other.transform
        if self.crs != other.crs or (s.b, s.d, o.b, o.d) != (0, 0, 0, 0):
            return None
        if not (
            math.isclose(s.a, o.a, rel_tol=tolerance) and math.isclose(s.e, o.e, rel_tol=tolerance)
        ):
            return None
        cols, rows = (s.c - o.c) / o.a, (s.f - o.f) / o.e
        if abs(cols - round(cols)) > tolerance or abs(rows - round(rows)) > tolerance:
            return None
        return round(rows), round(cols)

    def describe(self) -> str:
        a, _, c, _, e, f = tuple(self.transform)[:6]
        size = f"{self.width}x{self.height} px of {a:g}x{-e:g}"
        return f"{self.crs.to_string()} {size} at ({c:g}, {f:g})"


def covering_grid(grids: Sequence[Grid]) -> Grid:
    """The smallest grid on the lattice of ``grids[0]`` that covers every grid
    (the others' bounds transformed into its CRS): the common grid of a mosaic."""
    first = grids[0]
    t = first.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise ValueError(f"a mosaic needs north-up grids, not {first.describe()}")
    xmin, ymin, xmax, ymax = first.bounds
    for grid in grids[1:]:
        bounds = transform_bounds(grid.crs, first.crs, *grid.bounds, densify_pts=21)
        xmin, ymin = min(xmin, bounds[0]), min(ymin, bounds[1])
        xmax, ymax = max(xmax, bounds[2]), max(ymax, bounds[3])
    left = t.c + math.floor(round((xmin - t.c) / t.a, 6)) * t.a
    right = t.c + math.ceil(round((xmax - t.c) / t.a, 6)) * t.a
    top = t.f + math.floor(round((ymax - t.f) / t.e, 6)) * t.e
    bottom = t.f + math.ceil(round((ymin - t.f) / t.e, 6)) * t.e
    width, height = round((right - left) / t.a), round((bottom - top) / t.e)
    return Grid(first.crs, Affine(t.a, 0.0, left, 0.0, t.e, top), width, height)


def place_on_grid(
    array: np.ndarray,
    source: Grid,
    target: Grid,
    fill: float | int,
    resampling: Resampling = Resampling.bilinear,
) -> np.ndarray:
    """A 2-D array of ``source`` on ``target``: copied where both share a lattice
    (no resampling), else reprojected with ``resampling``; ``fill`` outside ``source``.

    Float arrays treat NaN as nodata while reprojecting; integer arrays keep
    every value (classes) and get ``fill`` only outside the source.
    """
    offset = source.offset_in(target)
    if offset is not None:
        out = np.full(target.shape, fill, dtype=array.dtype)
        row, col = offset
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + source.height, target.height), min(col + source.width, target.width)
        if r1 > r0 and c1 > c0:
            out[r0:r1, c0:c1] = array[r0 - row : r1 - row, c0 - col : c1 - col]
        return out
    floating = np.issubdtype(array.dtype, np.floating)
    out = np.full(target.shape, fill, dtype=np.float32 if floating else array.dtype)
    reproject(
        source=array.astype(np.float32, copy=False) if floating else array,
        destination=out,
        src_transform=source.transform,
        src_crs=source.crs,
        src_nodata=np.nan if floating else None,
        dst_transform=target.transform,
        dst_crs=target.crs,
        dst_nodata=fill,
        resampling=resampling,
    )
    return out


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
