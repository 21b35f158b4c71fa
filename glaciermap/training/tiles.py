"""The tiles of a run as in-memory tensors, and the statistics they are normalised with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glaciermap.data.normalization import pool_stats
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError


@dataclass
class TileTensors:
    """Images (N,C,S,S) float32, masks (N,S,S) uint8 and robust ranges (N,C,2) float32."""

    images: torch.Tensor
    masks: torch.Tensor
    ranges: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor | slice) -> TileTensors:
        return TileTensors(self.images[index], self.masks[index], self.ranges[index])

    def to(self, device: torch.device) -> TileTensors:
        return TileTensors(self.images.to(device), self.masks.to(device), self.ranges.to(device))


def load_tiles(paths: Sequence[str | Path], n_channels: int = 4) -> TileTensors:
    """Concatenate the tile stores of several dates (or chip datasets) of ``n_channels``."""
    if not paths:
        raise InputDataError("no tile files given")
    sets: list[TileSet] = []
    for path in paths:
        tiles = TileSet.load(path)
        if tiles.images.shape[1] != n_channels:
            raise InputDataError(
                f"{path}: expected {n_channels} channels (as the band statistics name), "
                f"found {tiles.images.shape[1]}"
            )
        if sets and tiles.images.shape[1:] != sets[0].images.shape[1:]:
            raise InputDataError(
                f"{path}: tile shape {tiles.images.shape[1:]} differs from that of {paths[0]} "
                f"({sets[0].images.shape[1:]})"
            )
        sets.append(tiles)
    return TileTensors(
        torch.from_numpy(np.concatenate([t.images for t in sets])),
        torch.from_numpy(np.concatenate([t.masks for t in sets])),
        torch.from_numpy(np.concatenate([t.ranges for t in sets])),
    )


def pooled_stats(stats_files: Sequence[str | Path]) -> dict[str, Any]:
    """Mean and std per band over the train tiles of all the given dates (their stats.json)."""
    stats = []
    for path in stats_files:
        try:
            stats.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise InputDataError(f"cannot read band statistics {path}: {exc}") from exc
    try:
        return pool_stats(stats)
    except (KeyError, TypeError, ValueError) as exc:
        names = ", ".join(str(p) for p in stats_files) or "(none given)"
        raise InputDataError(f"cannot pool band statistics of {names}: {exc}") from exc
