"""Tile windows on a scene grid and the spatial train / validation / test split.

Tiles start every ``stride`` pixels from the grid origin. A tile belongs to a
region only if all its pixels do, so train and test tiles never share a pixel.
Validation takes square blocks of the train region (``block_tiles`` tiles a
side, anchored at the grid origin) chosen at random with a seed: validation
tiles lie inside the chosen blocks and train tiles do not touch them, so no
pixel is in a train and a validation tile. The split raster labels the pixels of
each split's tiles, and :func:`windows_from_regions` recovers the same windows
from it.
"""

from __future__ import annotations

import numpy as np

from glaciermap.errors import InputDataError

OUTSIDE, TRAIN, VAL, TEST = 0, 1, 2, 3
SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}


def covering_starts(length: int, size: int, stride: int) -> list[int]:
    """Window offsets along one axis that cover every pixel: every ``stride``, plus one
    ending on the edge; a single start 0 (the window padded) when ``length <= size``.

    Chips are tiled and scenes are predicted this way; the scene's training tiles
    (:func:`all_windows`) are not, so that no tile crosses a region's edge.
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def all_windows(shape: tuple[int, int], size: int, stride: int) -> np.ndarray:
    """Every (row_off, col_off, size, size) window at ``stride`` that fits in ``shape``."""
    height, width = shape
    rows = np.arange(0, height - size + 1, stride)
    cols = np.arange(0, width - size + 1, stride)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    n = rr.size
    return np.stack([rr.ravel(), cc.ravel(), np.full(n, size), np.full(n, size)], axis=1).astype(
        np.int64
    )


def window_sums(values: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Sum of a 2-D array over each window, via a summed-area table."""
    # int32 holds any count of a 0/1 raster below 2**31 pixels and halves the memory.
    dtype = np.int32 if values.dtype == bool and values.size < 2**31 else np.int64
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=dtype)
    np.cumsum(values, axis=0, dtype=dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    r, c, h, w = windows.T if len(windows) else (np.zeros(0, int),) * 4
    return table[r + h, c + w] - table[r, c + w] - table[r + h, c] + table[r, c]


def windows_inside(inside: np.ndarray, size: int, stride: int) -> np.ndarray:
    """The windows all of whose pixels are True in ``inside``."""
    windows = all_windows(inside.shape, size, stride)
    return windows[window_sums(inside, windows) == size * size]


def _block_ids(windows: np.ndarray, block: int) -> np.ndarray:
    """Block (row, col) index of windows lying in one block; -1 for those crossing blocks."""
    first = windows[:, :2] // block
    last = (windows[:, :2] + windows[:, 2:] - 1) // block
    ids = first.copy()
    ids[(first != last).any(axis=1)] = -1
    return ids


def plan_splits(
    regions: np.ndarray,
    size: int,
    stride: int,
    val_fraction: float,
    block_tiles: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Windows of each split from a region raster (TRAIN / TEST pixels, the rest OUTSIDE)."""
    candidates = windows_inside(regions == TRAIN, size, stride)
    test = windows_inside(regions == TEST, size, stride)
    for name, windows in (("train", candidates), ("test", test)):
        if len(windows) == 0:
            raise InputDataError(
                f"config key 'data.regions.{name}': the region holds no whole {size}x{size} "
                f"tile (stride {stride}); enlarge it or make data.tiles.size smaller"
            )
    block = block_tiles * size
    ids = _block_ids(candidates, block)
    blocks = np.unique(ids[(ids >= 0).all(axis=1)], axis=0)
    np.random.default_rng(seed).shuffle(blocks)
    val_area = np.zeros(regions.shape, dtype=bool)
    train, val = candidates, candidates[:0]
    for row, col in blocks:
        val_area[row * block : (row + 1) * block, col * block : (col + 1) * block] = True
        touched = window_sums(val_area, candidates)
        val = candidates[touched == size * size]
        train = candidates[touched == 0]
        if len(val) >= val_fraction * (len(val) + len(train)):
            break
    if len(train) == 0 or len(val) == 0:
        raise InputDataError(
            f"config key 'data.regions.train': its {len(candidates)} tiles cannot be split into "
            f"train and validation blocks of {block_tiles}x{block_tiles} tiles "
            "(data.tiles.val_block_tiles); enlarge the region or make the blocks smaller"
        )
    return {"train": train, "val": val, "test": test}


def split_raster(shape: tuple[int, int], splits: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 raster labelling the pixels of each split's tiles (OUTSIDE elsewhere)."""
    raster = np.full(shape, OUTSIDE, dtype=np.uint8)
    for name, windows in splits.items():
        for row, col, height, width in windows:
            raster[row : row + height, col : col + width] = SPLITS[name]
    return raster


def windows_from_regions(regions: np.ndarray, size: int, stride: int) -> dict[str, np.ndarray]:
    """The windows of each split from a raster written by :func:`split_raster`."""
    return {name: windows_inside(regions == code, size, stride) for name, code in SPLITS.items()}
