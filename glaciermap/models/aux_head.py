"""The auxiliary head that gives the study's ``dropout`` and ``pooling`` a real effect.

It pools the deepest encoder features globally, applies dropout and a linear
layer, and predicts one logit: the tile's glacier fraction (trained with
``BCEWithLogits`` against the fraction of glacier pixels, weighted by
``aux_weight``). The mask logits never pass through this head, so for a fixed
set of weights in eval mode ``dropout`` and ``pooling`` change only the
auxiliary output; they change the masks through training, because the aux loss
back-propagates into the shared encoder.

The seven segmentation-models-pytorch architectures get the equivalent head
from smp itself (``aux_params``, see :func:`smp_aux_params`); MAResUNet and
WaveMix use :class:`AuxHead`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from glaciermap.models.spec import ModelSpec

# The study says "mean"; smp and torch call it "avg".
_SMP_POOLING = {"mean": "avg", "max": "max"}


def uses_aux_head(spec: ModelSpec) -> bool:
    """The head exists only when its loss is used (``aux_weight > 0``)."""
    return spec.aux_weight > 0


def smp_aux_params(spec: ModelSpec) -> dict[str, Any] | None:
    """``aux_params`` for a segmentation-models-pytorch model, or None without aux loss."""
    if not uses_aux_head(spec):
        return None
    return {
        "classes": 1,
        "pooling": _SMP_POOLING[spec.hparams.pooling],
        "dropout": spec.hparams.dropout,
        "activation": None,
    }


class AuxHead(nn.Module):
    """Global pooling (max or mean) -> dropout -> linear -> one logit per tile."""

    def __init__(self, in_channels: int, pooling: str, dropout: float) -> None:
        super().__init__()
        if pooling not in _SMP_POOLING:
            raise ValueError(f"pooling must be max or mean, not {pooling!r}")
        self.pool = nn.AdaptiveMaxPool2d(1) if pooling == "max" else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) deepest features -> (N, 1) glacier-fraction logit."""
        return self.linear(self.dropout(torch.flatten(self.pool(features), 1)))


def build_aux_head(spec: ModelSpec, in_channels: int) -> AuxHead | None:
    """The head for a project-written model, or None when ``aux_weight == 0``."""
    if not uses_aux_head(spec):
        return None
    return AuxHead(in_channels, spec.hparams.pooling, spec.hparams.dropout)
