"""Per-band normalisation statistics of the training tiles, and pooling them over dates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from glaciermap.bands import BANDS


def band_stats(images: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """Mean and standard deviation per band over the valid pixels of (N, B, S, S) tiles.

    ``valid`` (N, S, S) excludes nodata pixels, which are stored as 0 in the tiles.
    """
    pixels = images.transpose(1, 0, 2, 3)[:, valid].astype(np.float64)  # (B, n)
    count = int(pixels.shape[1])
    if count == 0:
        raise ValueError("no valid pixel to compute band statistics from")
    mean = pixels.mean(axis=1)
    std = pixels.std(axis=1)
    return {"bands": list(BANDS), "count": count, "mean": mean.tolist(), "std": std.tolist()}


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
