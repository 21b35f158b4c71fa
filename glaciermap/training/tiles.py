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
from glaciermap.labels import NODATA


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


@dataclass
class TileGroups:
    """The tiles of a run in groups of one tile size each (a scene date or chip dataset
    may have its own size, glaciermap.data.tile_size), in order of first appearance.

    Tiles are numbered across the groups (group 0 first); a batch is drawn from one
    group only (:func:`glaciermap.training.run.batch_indices`), so every batch is
    one tensor and the models, fully convolutional, see every size.
    """

    groups: list[TileTensors]

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def sizes(self) -> list[int]:
        """Tile side of each group, in pixels."""
        return [int(g.images.shape[-1]) for g in self.groups]

    @property
    def group_of(self) -> torch.Tensor:
        """Group number of every tile, (N,) int64 on the CPU."""
        return torch.cat(
            [torch.full((len(g),), i, dtype=torch.int64) for i, g in enumerate(self.groups)]
        )

    def __getitem__(self, index: torch.Tensor) -> TileTensors:
        """The tiles at global ``index`` (a CPU tensor, all of one group), on the group's
        device; the group is found on the CPU, so a batch costs no device sync."""
        start = 0
        for group in self.groups:
            if len(self.groups) == 1 or int(index[0]) < start + len(group):
                local = index - start
                if len(self.groups) > 1 and not bool(((local >= 0) & (local < len(group))).all()):
                    raise IndexError("a batch holds tiles of several sizes")
                return group[local.to(group.images.device)]
            start += len(group)
        raise IndexError(f"tile {int(index[0])} of {len(self)}")

    def to(self, device: torch.device) -> TileGroups:
        return TileGroups([g.to(device) for g in self.groups])

    def labelled_pixels(self) -> int:
        return sum(int((g.masks != NODATA).sum()) for g in self.groups)


def load_tiles(paths: Sequence[str | Path], n_channels: int = 4) -> TileGroups:
    """The tile stores of several dates (or chip datasets) of ``n_channels``, grouped by
    tile size."""
    if not paths:
        raise InputDataError("no tile files given")
    by_shape: dict[tuple[int, ...], list[TileSet]] = {}
    for path in paths:
        tiles = TileSet.load(path)
        if tiles.images.shape[1] != n_channels:
            raise InputDataError(
                f"{path}: expected {n_channels} channels (as the band statistics name), "
                f"found {tiles.images.shape[1]}"
            )
        if len(tiles):  # an empty store (a chip set's val.npz with split: train) adds nothing
            by_shape.setdefault(tuple(tiles.images.shape[1:]), []).append(tiles)
    if not by_shape:
        empty = TileSet.load(paths[0])
        return TileGroups([_tensors([empty])])
    return TileGroups([_tensors(sets) for sets in by_shape.values()])


def _tensors(sets: Sequence[TileSet]) -> TileTensors:
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
