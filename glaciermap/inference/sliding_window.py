"""Blended sliding-window prediction of a whole scene, block by block, in bounded memory.

The windows and blocks are those of :mod:`glaciermap.inference.windows`. Each
pixel's probability is the weighted mean of every window covering it, with
weights that cross-fade neighbouring windows over their overlap.

A pipeline keeps the model busy: a reader thread reads (and NaN-fills) the next
blocks while the model runs; batches are filled with windows across block
edges; each window is predicted once. A block is finished when its last window
is predicted: the sums that windows of earlier blocks left on it (carried to
the right and down, ``margin`` px wide) are added, and its output pixels are
yielded. Memory holds a few blocks plus two margin-high strips a scene wide.

Every member of an ensemble predicts every batch, so the scene is read once;
each member keeps its own normalisation (inside its ``predict_proba``).

Nodata (NaN in any band) stays NaN. Nodata pixels are given to the model as 0,
as in the training tiles; windows with no valid pixel are skipped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from rasterio.windows import Window

from glaciermap.errors import InputDataError
from glaciermap.inference.settings import InferenceSettings
from glaciermap.inference.tta import predict_tta
from glaciermap.inference.windows import Block, WindowPlan, blend_weights, plan_windows
from glaciermap.utils.progress import progress

log = logging.getLogger(__name__)

# blocks read ahead of the one the model works on
READ_AHEAD = 1


class Predictor(Protocol):
    """What prediction needs from a checkpoint (``glaciermap.models.checkpoint``)."""

    tile_size: int  # the training tile: the default window

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor: ...


class BandSource(Protocol):
    """A scene that can be read by windows as (bands, h, w) float32, NaN = nodata."""

    height: int
    width: int

    def read(self, window: Window) -> np.ndarray: ...


@dataclass(frozen=True)
class BlockPrediction:
    """The finished output pixels of one block: each member's probability, NaN = nodata."""

    window: Window
    probabilities: np.ndarray  # (members, h, w) float32


@dataclass
class _LiveBlock:
    block: Block
    image: torch.Tensor  # (bands, h, w) on the device, nodata as 0, padded to whole windows
    valid: np.ndarray  # (h, w) bool
    sums: torch.Tensor  # (members + 1, h, w): weighted probability sums, then weight sums
    remaining: int = 0


class _Carries:
    """Sums that windows of finished blocks left on pixels that later blocks output."""

    def __init__(self) -> None:
        self.right: torch.Tensor | None = None  # for the next block of the row
        self.above: torch.Tensor | None = None  # strip a scene wide, for this block row
        self.below: torch.Tensor | None = None  # strip a scene wide, for the next block row


def device_of(predictors: Sequence[Predictor]) -> torch.device:
    """The device of the first predictor (the CPU for those without one)."""
    return torch.device(getattr(predictors[0], "device", "cpu"))


def _read_block(source: BandSource, block: Block) -> tuple[np.ndarray, np.ndarray]:
    """The block's windows' pixels, nodata as 0 and padded past the scene; validity."""
    bottom, right = min(block.extent_bottom, source.height), min(block.extent_right, source.width)
    image = source.read(Window(block.left, block.top, right - block.left, bottom - block.top))
    image = image.astype(np.float32, copy=False)
    valid = np.isfinite(image).all(axis=0)  # ±inf is nodata like NaN, never a huge value
    image[~np.isfinite(image)] = 0.0
    pad = ((0, block.extent_bottom - bottom), (0, block.extent_right - right))
    if pad[0][1] or pad[1][1]:
        image = np.pad(image, ((0, 0), *pad))
        valid = np.pad(valid, pad)
    return image, valid


class _Engine:
    """Batches windows through the members and finishes blocks in raster order."""

    def __init__(
        self,
        predictors: Sequence[Predictor],
        settings: InferenceSettings,
        plan: WindowPlan,
        memory_format: torch.memory_format,
    ) -> None:
        self.predictors = list(predictors)
        self.settings = settings
        self.plan = plan
        self.device = device_of(predictors)
        self.memory_format = memory_format
        self.weights = torch.from_numpy(
            blend_weights(
                plan.window_height, plan.window_width, settings.window_margin()[1], settings.blend
            )
        ).to(self.device)
        self.live: collections.deque[_LiveBlock] = collections.deque()
        self.batch: list[tuple[_LiveBlock, int, int]] = []
        self.carries = _Carries()

    def add_block(self, block: Block, image: np.ndarray, valid: np.ndarray) -> None:
        """Queue the block's windows that hold data; predict every full batch."""
        live = _LiveBlock(
            block,
            torch.from_numpy(image).to(self.device),
            valid,
            torch.zeros((len(self.predictors) + 1, *valid.shape), device=self.device),
        )
        self.live.append(live)
        h, w = self.plan.window_height, self.plan.window_width
        for r, c in block.windows:
            if not valid[r : r + h, c : c + w].any():
                continue  # all nodata: nothing to predict
            live.remaining += 1
            self.batch.append((live, r, c))
            if len(self.batch) == self.settings.batch_size:
                self.flush()

    def flush(self) -> None:
        """Predict the queued windows with every member and add them to their blocks."""
        if not self.batch:
            return
        h, w = self.plan.window_height, self.plan.window_width
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"),
        ):
            x = torch.stack([live.image[:, r : r + h, c : c + w] for live, r, c in self.batch])
            members = [
                predict_tta(p.predict_proba, x, self.settings.tta, self.memory_format)
                for p in self.predictors
            ]
            for i, (live, r, c) in enumerate(self.batch):
                sums = live.sums[:, r : r + h, c : c + w]
                for m, probability in enumerate(members):
                    sums[m].addcmul_(probability[i].to(self.device, torch.float32), self.weights)
                sums[-1] += self.weights
                live.remaining -= 1
        self.batch.clear()

    def finished(self) -> Iterator[BlockPrediction]:
        """Yield the blocks, in order, whose windows have all been predicted."""
        while self.live and self.live[0].remaining == 0:
            yield self._finish(self.live.popleft())

    def _finish(self, live: _LiveBlock) -> BlockPrediction:
        block, sums, carries = live.block, live.sums, self.carries
        out_h, out_w = block.bottom - block.top, block.right - block.left
        with torch.inference_mode():
            if carries.right is not None:
                sums[:, :, : carries.right.shape[2]] += carries.right
            if carries.above is not None:
                sums[:, : carries.above.shape[1], :out_w] += carries.above[
                    :, :, block.left : block.right
                ]
            last_col = block.col + 1 == self.plan.n_block_cols
            carries.right = None if last_col else sums[:, :, out_w:].clone()
            if block.row + 1 < self.plan.n_block_rows:
                if carries.below is None:
                    shape = (sums.shape[0], sums.shape[1] - out_h, self.plan.width)
                    carries.below = sums.new_zeros(shape)
                carries.below[:, :, block.left : block.right] = sums[:, out_h:, :out_w]
            if last_col:
                carries.above, carries.below = carries.below, None
            probability = (sums[:-1, :out_h, :out_w] / sums[-1, :out_h, :out_w]).cpu().numpy()
        probability[:, ~live.valid[:out_h, :out_w]] = np.nan
        return BlockPrediction(block.output, probability)


def predict_blocks(
    source: BandSource,
    predictors: Sequence[Predictor],
    settings: InferenceSettings,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[BlockPrediction]:
    """Yield every member's probability over the scene, block by block, in raster order.

    Calls each predictor's ``prepare(source)`` first, where it has one (e.g. to
    take statistics of the whole scene for its normalisation).
    """
    if not predictors:
        raise ValueError("predict_blocks needs at least one predictor")
    for predictor in predictors:
        prepare = getattr(predictor, "prepare", None)
        if prepare is not None:
            prepare(source)
    if not settings.resolved:
        tiles = sorted({int(p.tile_size) for p in predictors}) if settings.window is None else []
        if len(tiles) > 1:
            raise InputDataError(
                f"the checkpoints were trained on tiles of {tiles} px: set inference.window "
                "(--window) to predict them together"
            )
        settings = settings.for_tile(tiles[0] if tiles else None)
    plan = plan_windows(source.height, source.width, settings)
    if plan.window_height > source.height or plan.window_width > source.width:
        log.warning(
            "scene of %dx%d pixels is smaller than one %dx%d window: padded with 0 (nodata)",
            source.height,
            source.width,
            plan.window_height,
            plan.window_width,
        )
    engine = _Engine(predictors, settings, plan, memory_format)
    # Pixels finished (k, M), their rate and the time left; the block count alongside.
    with (
        progress(plan.height * plan.width, "predict", "px", unit_scale=True) as bar,
        contextlib.closing(_finished_blocks(source, plan, engine)) as blocks,  # reader stops
    ):
        for done, finished in enumerate(blocks, start=1):
            bar.set_postfix_str(f"block {done}/{len(plan.blocks)}", refresh=False)
            bar.update(finished.window.height * finished.window.width)
            yield finished


def _finished_blocks(
    source: BandSource, plan: WindowPlan, engine: _Engine
) -> Generator[BlockPrediction, None, None]:
    """Read the blocks ahead in a thread, predict them, yield them as they finish."""
    reads: collections.deque[tuple[Block, Future]] = collections.deque()
    blocks = iter(plan.blocks)
    reader = ThreadPoolExecutor(1, thread_name_prefix="glaciermap-read")
    try:
        for block in blocks:
            reads.append((block, reader.submit(_read_block, source, block)))
            if len(reads) > READ_AHEAD:
                break
        while reads:
            block, future = reads.popleft()
            image, valid = future.result()
            following = next(blocks, None)
            if following is not None:
                reads.append((following, reader.submit(_read_block, source, following)))
            engine.add_block(block, image, valid)
            yield from engine.finished()
        engine.flush()
        yield from engine.finished()
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
