"""Band normalisation: train-tile statistics (pooled over dates) and robust scene ranges.

Two ways to normalise a model's input (``training.normalization``):

- ``dataset``: (x - mean) / std with the mean and std of the run's training
  tiles (:func:`band_stats`, pooled over dates by :func:`pool_stats`), fixed in
  the checkpoint: a scene of another sensor or processing level must have the
  same value range as the training scenes.
- ``scene``: each scene (or chip) is scaled by its own robust range, the 2nd
  and 98th percentile of each band (:func:`scene_range`, applied by
  :mod:`glaciermap.models.normalizer`), computed again on every scene the
  model maps. Any positive linear change of a band (a gain, an offset, 8-bit
  DNs instead of reflectance) leaves the model's input unchanged.

Both apply to the spectral channels. Terrain and index channels
(:data:`glaciermap.channels.FIXED_RANGES`) have a fixed range instead, mapped to
[-1, 1] in either mode: their statistics are the range's centre and half-span,
their "robust range" is the fixed range, whatever the scene.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np

if TYPE_CHECKING:  # the training settings import this module's option names, torch- and GDAL-free
    from rasterio.windows import Window

from glaciermap.channels import DEFAULT_CHANNELS, FIXED_RANGES

Normalization = Literal["dataset", "scene"]
NORMALIZATIONS: tuple[Normalization, ...] = get_args(Normalization)


def band_stats(
    images: np.ndarray, valid: np.ndarray, channels: Sequence[str] = DEFAULT_CHANNELS
) -> dict[str, Any]:
    """Mean and standard deviation per channel over the valid pixels of (N, C, S, S) tiles
    (the centre and half-span of the fixed range for terrain and index channels).

    ``valid`` (N, S, S) excludes nodata pixels, which are stored as 0 in the tiles.
    """
    if len(channels) != images.shape[1]:
        raise ValueError(f"{images.shape[1]} channels in the tiles, named {list(channels)}")
    pixels = images.transpose(1, 0, 2, 3)[:, valid].astype(np.float64)  # (B, n)
    count = int(pixels.shape[1])
    if count == 0:
        raise ValueError("no valid pixel to compute band statistics from")
    mean = pixels.mean(axis=1)
    std = pixels.std(axis=1)
    for i, channel in enumerate(channels):
        if channel in FIXED_RANGES:
            low, high = FIXED_RANGES[channel]
            mean[i], std[i] = (low + high) / 2, (high - low) / 2
    return {"bands": list(channels), "count": count, "mean": mean.tolist(), "std": std.tolist()}


def pool_stats(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-date statistics as if computed over all their pixels together."""
    if not stats:
        raise ValueError("pool_stats needs at least one statistics dict")
    bands = stats[0]["bands"]
    if any(s["bands"] != bands for s in stats):
        raise ValueError("cannot pool statistics of different bands")
    counts = np.array([s["count"] for s in stats], dtype=np.float64)
    means = np.array([s["mean"] for s in stats], dtype=np.float64)
    variances = np.array([s["std"] for s in stats], dtype=np.float64) ** 2
    total = counts.sum()
    mean = (counts[:, None] * means).sum(axis=0) / total
    # E[x^2] pooled, minus the pooled mean squared.
    second = (counts[:, None] * (variances + means**2)).sum(axis=0) / total
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    return {"bands": list(bands), "count": int(total), "mean": mean.tolist(), "std": std.tolist()}


# Robust range of a scene: the percentiles of each band over its valid pixels.
ROBUST_PERCENTILES = (2.0, 98.0)
MAX_RANGE_SAMPLES = 1_000_000  # pixels sampled on a regular grid; percentiles are stable
MIN_SPAN = 1e-6  # a constant band must not divide by zero
# A scene (or chip) with fewer valid pixels (of the sampled grid) is not mapped:
# its robust range, and any map of it, would rest on a handful of pixels.
MIN_VALID_PIXELS = 100
_RANGE_BLOCK_ROWS = 1024


class WindowedBands(Protocol):
    """A scene readable by windows as (bands, h, w) float32, NaN = nodata."""

    height: int
    width: int

    def read(self, window: Window) -> np.ndarray: ...


class ArrayBands:
    """An in-memory (bands, H, W) array behind the :class:`WindowedBands` interface."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.height, self.width = array.shape[-2:]

    def read(self, window: Window) -> np.ndarray:
        (row0, row1), (col0, col1) = window.toranges()
        return self.array[:, row0:row1, col0:col1].astype(np.float32, copy=False)


# Samples of sources already measured: a scene is checked and ranged with one read.
_SAMPLES: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def _valid_samples(source: WindowedBands, max_samples: int) -> np.ndarray:
    """(bands, n) the valid pixels (every band finite: NaN and ±inf are nodata) of a
    regular grid over the whole scene, read by blocks."""
    cacheable = max_samples == MAX_RANGE_SAMPLES
    try:
        cached = _SAMPLES.get(source) if cacheable else None
    except TypeError:  # not weakly referenceable or hashable: measured each time
        cached, cacheable = None, False
    if cached is not None:
        return cached
    from rasterio.windows import Window  # here: the option names above stay GDAL-free

    step = max(1, math.ceil(math.sqrt(source.height * source.width / max_samples)))
    samples = []
    for row in range(0, source.height, _RANGE_BLOCK_ROWS):
        rows = min(_RANGE_BLOCK_ROWS, source.height - row)
        block = source.read(Window(0, row, source.width, rows))
        picked = block[:, (-row) % step :: step, ::step].reshape(block.shape[0], -1)
        samples.append(picked[:, np.isfinite(picked).all(axis=0)])
    values = np.concatenate(samples, axis=1)
    if cacheable:
        _SAMPLES[source] = values
    return values


def scene_range(
    source: WindowedBands,
    max_samples: int = MAX_RANGE_SAMPLES,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> np.ndarray:
    """(bands, 2) float32: the 2nd and 98th percentile of each band over the valid
    pixels (the fixed range of a terrain or index channel of ``channels``).

    Pixels are sampled on one regular grid of the whole scene (every ``step``-th
    row and column, from the origin), read by blocks: the result depends on the
    pixel values only, so a scene read from its file at prediction gives the
    numbers its tiles were trained with. Raises ValueError without a valid pixel.
    """
    values = _valid_samples(source, max_samples)
    if values.shape[1] == 0:
        raise ValueError("no valid pixel to compute the scene's robust range from")
    low, high = np.percentile(values, ROBUST_PERCENTILES, axis=1)
    for i, channel in enumerate(channels):
        if channel in FIXED_RANGES:
            low[i], high[i] = FIXED_RANGES[channel]
    return np.stack([low, high], axis=1).astype(np.float32)


def degenerate_reason(
    source: WindowedBands,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    minimum: int = MIN_VALID_PIXELS,
) -> str | None:
    """Why ``source`` is no scene to map or train on, with its numbers; None if it is.

    Refused: fewer than ``minimum`` valid pixels on the sampled grid (NaN and ±inf
    are nodata), or a spectral channel whose 2nd and 98th percentiles are equal (a
    constant band: a model would map it with confidence, and scene normalisation
    could not scale it). Terrain and index channels have a fixed range, so a
    constant one (flat ground) is no reason.
    """
    values = _valid_samples(source, MAX_RANGE_SAMPLES)
    n = values.shape[1]
    if n < minimum:
        return (
            f"{n} valid pixel(s) of {source.height}x{source.width}: at least {minimum} "
            "are needed (NaN, ±inf and nodata are not valid)"
        )
    low, high = np.percentile(values, ROBUST_PERCENTILES, axis=1)
    for name, lo, hi in zip(channels, low, high, strict=True):
        if name not in FIXED_RANGES and hi - lo < MIN_SPAN:
            return (
                f"band {name} is constant ({lo:g} from the 2nd to the 98th percentile of "
                f"{n} valid pixels)"
            )
    return None
