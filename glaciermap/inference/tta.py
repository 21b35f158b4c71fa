"""Test-time augmentation: predict flipped and rotated windows, undo, average.

A transform is (quarter turns, horizontal flip first); ``flips`` are the four
flips (none, left-right, up-down = both turned half, both), ``d4`` all eight
rotations and reflections of the square. The average is taken in float64, so a
model that commutes with the transforms gives exactly its plain prediction.
No TTA library is a dependency (ttach is not installed); the eight transforms
are a few lines of ``torch.rot90`` and ``torch.flip``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from glaciermap.inference.settings import TtaKind

Transform = tuple[int, bool]
TRANSFORMS: dict[str, tuple[Transform, ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((turns, flip) for flip in (False, True) for turns in range(4)),
}


def apply(x: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Transform the last two (spatial) dimensions of ``x``."""
    turns, flip = transform
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def undo(y: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Invert :func:`apply` on the last two dimensions of ``y``."""
    turns, flip = transform
    if turns:
        y = torch.rot90(y, -turns, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if flip else y


def predict_tta(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    kind: TtaKind,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Mean probability (N, H, W) of ``predict`` over the transforms of ``kind``."""
    transforms = TRANSFORMS[kind]
    if len(transforms) == 1:
        return predict(x.contiguous(memory_format=memory_format)).float()
    total: torch.Tensor | None = None
    for transform in transforms:
        moved = apply(x, transform).contiguous(memory_format=memory_format)
        probability = undo(predict(moved), transform).double()
        total = probability if total is None else total + probability
    assert total is not None
    return (total / len(transforms)).float()
