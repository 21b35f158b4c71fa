"""Where the prediction windows lie on a scene, their blend weights, and the blocks.

Windows are laid on one grid over the whole scene, overlapping by ``margin``
pixels, the last row and column ending on the scene's edge. Along each axis
the windows are as large as ``window`` or, where as many smaller ones cover the
axis, that smaller multiple of 32 (:func:`axis_window`). A scene axis shorter
than a window gets one window of its length rounded up to a multiple of 32
(padded with 0, the nodata convention).

The windows are grouped into blocks of whole window rows and columns; a block's
output starts at its first window and ends where the next block's first window
starts, so each window belongs to exactly one block and none is predicted twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from glaciermap.data.tiling import covering_starts
from glaciermap.inference.settings import SIZE_MULTIPLE, BlendKind, InferenceSettings


def _taper(size: int, margin: int, kind: BlendKind) -> np.ndarray:
    """Weights along one axis: 1 inside, falling towards both edges over ``margin`` px.

    With ``margin = size / 2`` these are the weights of a whole-window Gaussian
    (sigma = size / 4) or tent; they stay positive so that a pixel covered only
    by window edges (at the scene's border) still gets a value.
    """
    centres = np.arange(size, dtype=np.float64) + 0.5
    to_edge = np.minimum(centres, size - centres)  # distance of the pixel centre to the edge
    if kind == "uniform" or margin == 0:
        return np.ones(size)
    inside = np.minimum(to_edge / margin, 1.0)
    if kind == "linear":
        return inside
    if kind == "gaussian":
        return np.exp(-((1.0 - inside) ** 2) / (2 * 0.5**2))
    raise ValueError(f"unknown blend {kind!r}")


def blend_weights(height: int, width: int, margin: int, kind: BlendKind) -> np.ndarray:
    """(height, width) float32 window weights, 1 at the centre, positive everywhere."""
    weights = np.outer(_taper(height, margin, kind), _taper(width, margin, kind))
    return (weights / weights.max()).astype(np.float32)


def _round_up(value: float) -> int:
    return int(-(-value // SIZE_MULTIPLE) * SIZE_MULTIPLE)


def axis_window(length: int, window: int, margin: int) -> int:
    """The window side along one axis: the least multiple of 32 up to ``window`` that
    covers ``length`` with as few windows as ``window`` does, overlapping by ``margin``.

    Shrinking the windows to fit spares the model the pixels a last window
    ending on the edge would predict twice (a 2048 px axis takes 5 windows of 480
    px instead of 5 of 512).
    """
    if length <= window:
        return _round_up(length)
    count = -(-(length - margin) // (window - margin))
    return min(window, _round_up((length + (count - 1) * margin) / count))


@dataclass(frozen=True)
class Block:
    """Windows of whole rows and columns of the grid, and the pixels they finish.

    Output rows ``top:bottom`` (cols ``left:right``) are final once this block
    is predicted; the windows' pixels span ``top:extent_bottom``
    (``left:extent_right``), past the scene where a window is padded.
    """

    row: int
    col: int
    top: int
    bottom: int
    left: int
    right: int
    extent_bottom: int
    extent_right: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def output(self) -> Window:
        return Window(self.left, self.top, self.right - self.left, self.bottom - self.top)

    @property
    def windows(self) -> list[tuple[int, int]]:
        """Window offsets (row, col) relative to the block's top left."""
        return [
            (r - self.top, c - self.left)
            for r, c in itertools.product(self.row_starts, self.col_starts)
        ]


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one scene and their blocks, in raster order."""

    height: int
    width: int
    window_height: int
    window_width: int
    blocks: tuple[Block, ...]
    n_block_rows: int
    n_block_cols: int

    @property
    def n_windows(self) -> int:
        return sum(len(b.row_starts) * len(b.col_starts) for b in self.blocks)


def _axis_groups(length: int, size: int, margin: int, block_size: int) -> list[list[int]]:
    starts = covering_starts(length, size, max(1, size - margin))
    per_block = max(1, block_size // max(1, size - margin))
    return [starts[i : i + per_block] for i in range(0, len(starts), per_block)]


def plan_windows(height: int, width: int, settings: InferenceSettings) -> WindowPlan:
    """Lay the windows of ``settings`` on a ``height`` x ``width`` scene and group them."""
    window, margin = settings.window_margin()
    size_h = axis_window(height, window, margin)
    size_w = axis_window(width, window, margin)
    row_groups = _axis_groups(height, size_h, margin, settings.block_size)
    col_groups = _axis_groups(width, size_w, margin, settings.block_size)
    blocks = []
    for (i, rows), (j, cols) in itertools.product(enumerate(row_groups), enumerate(col_groups)):
        bottom = row_groups[i + 1][0] if i + 1 < len(row_groups) else height
        right = col_groups[j + 1][0] if j + 1 < len(col_groups) else width
        blocks.append(
            Block(
                row=i,
                col=j,
                top=rows[0],
                bottom=bottom,
                left=cols[0],
                right=right,
                extent_bottom=rows[-1] + size_h,
                extent_right=cols[-1] + size_w,
                row_starts=tuple(rows),
                col_starts=tuple(cols),
            )
        )
    return WindowPlan(
        height, width, size_h, size_w, tuple(blocks), len(row_groups), len(col_groups)
    )
