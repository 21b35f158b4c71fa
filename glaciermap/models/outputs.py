"""From a model's mask logits to the glacier probability, for either activation."""

from __future__ import annotations

import torch

from glaciermap.runs import Activation


def glacier_probability(mask_logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    """(N, C, H, W) logits -> (N, H, W) probability of glacier."""
    if activation == "sigmoid":
        return torch.sigmoid(mask_logits[:, 0])
    return torch.softmax(mask_logits, dim=1)[:, 1]
