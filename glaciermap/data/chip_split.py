"""The train / validation split of a chip dataset: by ground, not by file.

Chips that share ground are kept on one side: two chips share ground when their
footprints overlap by more than the area of one of their pixels (chips of one
place from different years share all of it; chips that only touch share none).
Chips whose centres fall in one square block of ``block_m`` metres are kept
together too, so that validation chips are not the neighbours of training
chips. The groups are the connected components of both relations; whole groups
go to validation until it holds about ``fraction`` of the labelled pixels, each
next group the one that keeps the validation glacier fraction closest to the
dataset's (ties broken by a seeded draw), so that the selection score is
measured on a representative share of the ground rather than a lucky draw.

Chips may come in any CRS: footprints are compared in the UTM zone of the
dataset's centre (:meth:`geopandas.GeoSeries.estimate_utm_crs`), after
densifying their edges so that a reprojected chip keeps its shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from glaciermap.errors import InputDataError
from glaciermap.io.grid import LONLAT, Grid

EDGE_POINTS = 16  # points per footprint edge when reprojecting


def footprints(grids: Sequence[Grid]) -> gpd.GeoSeries:
    """The chips' footprints in one metric CRS (UTM of the dataset's centre)."""
    shapes = []
    for grid in grids:
        xmin, ymin, xmax, ymax = grid.bounds
        outline = shapely.segmentize(
            shapely.box(xmin, ymin, xmax, ymax), max(xmax - xmin, ymax - ymin) / EDGE_POINTS
        )
        shapes.append(gpd.GeoSeries([outline], crs=grid.crs).to_crs(LONLAT).iloc[0])
    lonlat = gpd.GeoSeries(shapes, crs=LONLAT)
    return lonlat.to_crs(lonlat.estimate_utm_crs())


def pixel_size_m(grids: Sequence[Grid]) -> float:
    """The dataset's pixel size in metres: the median over its chips of the side of a
    pixel's area in the metric CRS of :func:`footprints` (chips in degrees too)."""
    areas = footprints(grids).area.to_numpy()
    pixels = np.array([g.width * g.height for g in grids], float)
    return float(np.median(np.sqrt(areas / pixels)))


def chip_centres_lonlat(grids: Sequence[Grid]) -> list[tuple[float, float]]:
    """(lon, lat) of each chip's footprint centre."""
    if not grids:
        return []
    centres = footprints(grids).centroid.to_crs(LONLAT)
    return [(float(p.x), float(p.y)) for p in centres]


def shared_ground_pairs(grids: Sequence[Grid]) -> np.ndarray:
    """(k, 2) indices i < j of chips whose footprints share more than one pixel's area."""
    shapes = footprints(grids)
    pixel_area = shapes.area.to_numpy() / np.array([g.width * g.height for g in grids], float)
    left, right = shapes.sindex.query(shapes.values, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return np.zeros((0, 2), np.int64)
    common = shapely.area(shapely.intersection(shapes.values[left], shapes.values[right]))
    shared = common > np.minimum(pixel_area[left], pixel_area[right])
    return np.stack([left[shared], right[shared]], axis=1).astype(np.int64)


def ground_groups(grids: Sequence[Grid], block_m: float) -> np.ndarray:
    """Group id of each chip: chips sharing ground or a centre block have one id."""
    n = len(grids)
    centres = footprints(grids).centroid
    blocks = np.stack(
        [np.floor(centres.x.to_numpy() / block_m), np.floor(centres.y.to_numpy() / block_m)],
        axis=1,
    )
    _, block_ids = np.unique(blocks, axis=0, return_inverse=True)
    pairs = shared_ground_pairs(grids)
    # A graph of chips (nodes 0..n-1) and blocks (nodes n..): edges chip-chip for
    # shared ground, chip-block for the block of its centre.
    rows = np.concatenate([pairs[:, 0], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], n + block_ids.ravel()])
    size = n + int(block_ids.max()) + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def assign_train_val(
    grids: Sequence[Grid],
    labelled: Sequence[int],
    glacier: Sequence[int],
    fraction: float,
    block_m: float,
    seed: int,
    key: str = "validation",
) -> list[str]:
    """``"train"`` or ``"val"`` for each chip (``labelled`` and ``glacier`` pixels each):
    whole ground groups, validation holding at most ``fraction`` of the labelled
    pixels (unless one group must go there), balanced in glacier fraction."""
    groups = ground_groups(grids, block_m)
    n_labelled = np.asarray(labelled, dtype=np.float64)
    n_glacier = np.asarray(glacier, dtype=np.float64)
    ids = np.unique(groups)
    total = n_labelled.sum()
    if len(ids) < 2 or total == 0:
        raise InputDataError(
            f"{key}: the {len(grids)} chips form {len(ids)} group(s) of shared ground or "
            "blocks, which cannot be split into train and validation; make block_m smaller "
            "or use split: train"
        )
    size = {g: n_labelled[groups == g].sum() for g in ids}
    ice = {g: n_glacier[groups == g].sum() for g in ids}
    overall = n_glacier.sum() / total
    order = [int(g) for g in np.random.default_rng(seed).permutation(ids) if size[g] > 0]
    val: list[int] = []
    target, taken, taken_ice = fraction * total, 0.0, 0.0
    while True:
        fits = [g for g in order if g not in val and taken + size[g] <= target]
        if not fits:
            break
        # min() keeps the first of equal candidates: the seeded order breaks ties.
        best = min(fits, key=lambda g: abs((taken_ice + ice[g]) / (taken + size[g]) - overall))
        val.append(best)
        taken, taken_ice = taken + size[best], taken_ice + ice[best]
    if not val:  # every group is larger than the target: the smallest one
        val = [min(order, key=lambda g: size[g])]
    if n_labelled[~np.isin(groups, val)].sum() == 0:
        raise InputDataError(f"{key}: no training pixels would be left; make block_m smaller")
    return ["val" if g in val else "train" for g in groups]
