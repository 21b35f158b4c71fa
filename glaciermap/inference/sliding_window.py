"""Blended sliding-window prediction over a whole scene, in bounded memory.

Tiles of the checkpoint's size are laid on one grid over the whole scene
(stride = tile * (1 - overlap); the last row and column of tiles end on the
scene's edge, so any scene size is covered). Each pixel's probability is the
weighted mean of every tile covering it, with weights from a window that
favours tile centres, where the model sees the most context.

The scene is processed in square blocks of ``block_size`` pixels: for each block
the tiles that touch it are read (the block plus a halo of up to one tile),
predicted, and only the block itself is returned. Because the tile grid is
global, a pixel gets the same tiles whichever block it is in: blocks leave no
seams, and memory depends on ``block_size`` and not on the scene size. Tiles
that straddle a block edge are predicted once for each block they touch (about
``2 * tile / block_size`` extra work).

Nodata (NaN in any band) stays NaN. Nodata pixels are given to the model as 0,
as in the training tiles; tiles with no valid pixel are skipped. A scene smaller
than one tile is padded with 0 (the same nodata convention) to one tile, and the
outputs keep the scene's shape.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from rasterio.windows import Window

from glaciermap.errors import ConfigError

log = logging.getLogger(__name__)

WINDOW_KINDS = ("gaussian", "linear", "uniform")


class Predictor(Protocol):
    """What prediction needs from a checkpoint (``glaciermap.models.checkpoint``)."""

    tile_size: int

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor: ...


class BandSource(Protocol):
    """A scene that can be read by windows as (bands, h, w) float32, NaN = nodata."""

    height: int
    width: int

    def read(self, window: Window) -> np.ndarray: ...


@dataclass(frozen=True)
class InferenceSettings:
    """The ``inference:`` config section (threshold is applied by the caller)."""

    overlap: float = 0.5
    window: str = "gaussian"
    batch_size: int = 16
    block_size: int = 2048

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"config key 'inference.overlap': {self.overlap} not in [0, 1)")
        if self.window not in WINDOW_KINDS:
            raise ConfigError(
                f"config key 'inference.window': {self.window!r} is not one of "
                f"{', '.join(WINDOW_KINDS)}"
            )
        if self.batch_size < 1:
            raise ConfigError("config key 'inference.batch_size': must be at least 1")
        if self.block_size < 1:
            raise ConfigError("config key 'inference.block_size': must be at least 1")


def blend_weights(size: int, kind: str) -> np.ndarray:
    """(size, size) float32 weights, largest at the centre, positive everywhere.

    ``gaussian``: sigma = size / 4 (edge weight about 0.14 of the centre);
    ``linear``: a tent falling to 1/size at the edges; ``uniform``: all ones.
    Weights stay positive so that a pixel covered by edge tiles only still gets
    a value.
    """
    centres = np.arange(size, dtype=np.float64) + 0.5
    if kind == "uniform":
        line = np.ones(size)
    elif kind == "linear":
        line = 1.0 - np.abs(2.0 * centres / size - 1.0)
    elif kind == "gaussian":
        sigma = size / 4.0
        line = np.exp(-((centres - size / 2.0) ** 2) / (2.0 * sigma**2))
    else:
        raise ConfigError(f"config key 'inference.window': unknown window {kind!r}")
    weights = np.outer(line, line)
    return (weights / weights.max()).astype(np.float32)


def tile_stride(tile_size: int, overlap: float) -> int:
    """Distance between neighbouring tiles for a fractional ``overlap``."""
    return max(1, int(round(tile_size * (1.0 - overlap))))


def tile_starts(length: int, tile_size: int, stride: int) -> list[int]:
    """Tile offsets along one axis: every ``stride``, plus one ending on the edge."""
    if length <= tile_size:
        return [0]
    starts = list(range(0, length - tile_size + 1, stride))
    if starts[-1] != length - tile_size:
        starts.append(length - tile_size)
    return starts


def _touching(starts: Sequence[int], tile_size: int, lo: int, hi: int) -> list[int]:
    return [s for s in starts if s < hi and s + tile_size > lo]


def _predict_batch(predictor: Predictor, tiles: list[np.ndarray]) -> np.ndarray:
    batch = torch.from_numpy(np.stack(tiles))
    device = getattr(predictor, "device", None)
    if device is not None:
        batch = batch.to(device)
    with torch.inference_mode():
        proba = predictor.predict_proba(batch)
    return proba.float().cpu().numpy()


def predict_blocks(
    source: BandSource, predictor: Predictor, settings: InferenceSettings
) -> Iterator[tuple[Window, np.ndarray]]:
    """Yield (window, probability float32 (h, w), NaN = nodata) block by block."""
    tile = int(predictor.tile_size)
    stride = tile_stride(tile, settings.overlap)
    weights = blend_weights(tile, settings.window)
    row_starts = tile_starts(source.height, tile, stride)
    col_starts = tile_starts(source.width, tile, stride)
    if source.height < tile or source.width < tile:
        log.warning(
            "scene of %dx%d pixels is smaller than one %d-pixel tile: padded with 0 (nodata)",
            source.height,
            source.width,
            tile,
        )
    block = settings.block_size
    for block_row, block_col in itertools.product(
        range(0, source.height, block), range(0, source.width, block)
    ):
        row_end = min(source.height, block_row + block)
        col_end = min(source.width, block_col + block)
        rows = _touching(row_starts, tile, block_row, row_end)
        cols = _touching(col_starts, tile, block_col, col_end)
        yield (
            Window(block_col, block_row, col_end - block_col, row_end - block_row),
            _predict_region(
                source,
                predictor,
                settings,
                weights,
                rows,
                cols,
                (block_row, row_end),
                (block_col, col_end),
            ),
        )


def _predict_region(
    source: BandSource,
    predictor: Predictor,
    settings: InferenceSettings,
    weights: np.ndarray,
    rows: list[int],
    cols: list[int],
    block_rows: tuple[int, int],
    block_cols: tuple[int, int],
) -> np.ndarray:
    """Predict the tiles ``rows x cols`` and return the blend over the block."""
    tile = weights.shape[0]
    top, left = rows[0], cols[0]
    bottom = min(source.height, rows[-1] + tile)
    right = min(source.width, cols[-1] + tile)
    image = source.read(Window(left, top, right - left, bottom - top)).astype(np.float32)
    valid = ~np.isnan(image).any(axis=0)
    # Pad (only for a scene smaller than a tile) so that every tile is full-size.
    pad_h = rows[-1] + tile - top - image.shape[1]
    pad_w = cols[-1] + tile - left - image.shape[2]
    image = np.nan_to_num(image, nan=0.0)
    if pad_h > 0 or pad_w > 0:
        image = np.pad(image, ((0, 0), (0, max(0, pad_h)), (0, max(0, pad_w))))
        valid = np.pad(valid, ((0, max(0, pad_h)), (0, max(0, pad_w))))
    total = np.zeros(valid.shape, dtype=np.float32)
    weight_sum = np.zeros(valid.shape, dtype=np.float32)

    pending: list[tuple[int, int]] = []
    tiles: list[np.ndarray] = []

    def flush() -> None:
        proba = _predict_batch(predictor, tiles)
        for (r, c), p in zip(pending, proba, strict=True):
            total[r : r + tile, c : c + tile] += weights * p
            weight_sum[r : r + tile, c : c + tile] += weights
        pending.clear()
        tiles.clear()

    for row, col in itertools.product(rows, cols):
        r, c = row - top, col - left
        if not valid[r : r + tile, c : c + tile].any():
            continue  # all nodata: nothing to predict
        pending.append((r, c))
        tiles.append(image[:, r : r + tile, c : c + tile])
        if len(tiles) == settings.batch_size:
            flush()
    if tiles:
        flush()

    r0, r1 = block_rows[0] - top, block_rows[1] - top
    c0, c1 = block_cols[0] - left, block_cols[1] - left
    with np.errstate(invalid="ignore", divide="ignore"):
        proba = total[r0:r1, c0:c1] / weight_sum[r0:r1, c0:c1]
    proba[~valid[r0:r1, c0:c1]] = np.nan
    return proba
