"""The tiles of a run as two in-memory tensors, and the normalisation they are trained with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from glaciermap.data.normalization import pool_stats
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError

MIN_STD = 1e-6  # a constant band must not divide by zero


def load_tiles(paths: Sequence[str | Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the tiles of several dates: images float32 (N,4,S,S), masks uint8 (N,S,S)."""
    if not paths:
        raise InputDataError("no tile files given")
    images, masks = [], []
    for path in paths:
        tiles = TileSet.load(path)
        if tiles.images.shape[1] != 4:
            raise InputDataError(f"{path}: expected 4 bands, found {tiles.images.shape[1]}")
        if images and tiles.images.shape[1:] != images[0].shape[1:]:
            raise InputDataError(
                f"{path}: tile shape {tiles.images.shape[1:]} differs from that of {paths[0]} "
                f"({images[0].shape[1:]})"
            )
        images.append(tiles.images)
        masks.append(tiles.masks)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(masks))


def pooled_normalization(stats_files: Sequence[str | Path]) -> dict[str, list[float]]:
    """Mean and std per band over the train tiles of all the given dates (their stats.json)."""
    stats = []
    for path in stats_files:
        try:
            stats.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise InputDataError(f"cannot read band statistics {path}: {exc}") from exc
    try:
        pooled = pool_stats(stats)
    except (KeyError, TypeError, ValueError) as exc:
        names = ", ".join(str(p) for p in stats_files) or "(none given)"
        raise InputDataError(f"cannot pool band statistics of {names}: {exc}") from exc
    return {"mean": pooled["mean"], "std": [max(s, MIN_STD) for s in pooled["std"]]}
