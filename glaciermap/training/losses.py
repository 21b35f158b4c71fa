"""Segmentation losses for one-channel (sigmoid) and two-channel (softmax) outputs.

The config names the loss family with the binary names; with ``activation:
softmax`` (two output channels: not glacier, glacier) each becomes its
cross-entropy counterpart:

- ``bce``: sigmoid: binary cross-entropy on the logit; softmax: cross-entropy
  over the two channels.
- ``dice``: soft Dice loss on sigmoid(logit); softmax: on the glacier
  channel's softmax.
- ``bce+dice``: the sum of the two above.
- ``focal``: focal loss (gamma 2, no class weight) on the sigmoid, or on the
  softmax of the true class.

The soft Dice loss is computed over the whole batch (all pixels pooled), which
keeps it defined for tiles without glacier. The auxiliary head's loss is
binary cross-entropy between its logit and the tile's glacier fraction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from glaciermap.runs import Activation
from glaciermap.training.settings import LOSSES, Loss

FOCAL_GAMMA = 2.0
_DICE_SMOOTH = 1.0

SegLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _soft_dice(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    intersection = (probability * target).sum()
    total = probability.sum() + target.sum()
    return 1 - (2 * intersection + _DICE_SMOOTH) / (total + _DICE_SMOOTH)


def _binary_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits[:, 0], target)


def _binary_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _soft_dice(torch.sigmoid(logits[:, 0]), target)


def _binary_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none")
    p_true = torch.exp(-ce)  # probability given to the true class
    return ((1 - p_true) ** FOCAL_GAMMA * ce).mean()


def _softmax_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target.long())


def _softmax_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _soft_dice(torch.softmax(logits, dim=1)[:, 1], target)


def _softmax_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target.long(), reduction="none")
    p_true = torch.exp(-ce)
    return ((1 - p_true) ** FOCAL_GAMMA * ce).mean()


_TABLE: dict[tuple[str, str], list[SegLoss]] = {
    ("sigmoid", "bce"): [_binary_ce],
    ("sigmoid", "dice"): [_binary_dice],
    ("sigmoid", "bce+dice"): [_binary_ce, _binary_dice],
    ("sigmoid", "focal"): [_binary_focal],
    ("softmax", "bce"): [_softmax_ce],
    ("softmax", "dice"): [_softmax_dice],
    ("softmax", "bce+dice"): [_softmax_ce, _softmax_dice],
    ("softmax", "focal"): [_softmax_focal],
}


def segmentation_loss(loss: Loss, activation: Activation) -> SegLoss:
    """The loss ``f(mask_logits (N,C,H,W), target float (N,H,W) in {0,1}) -> scalar``."""
    try:
        terms = _TABLE[(activation, loss)]
    except KeyError:
        raise ValueError(
            f"unknown loss {loss!r} / activation {activation!r}; losses: {', '.join(LOSSES)}"
        ) from None

    def total(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Losses in float32 even under bf16 autocast: sums over many pixels.
        logits = logits.float()
        return sum((term(logits, target) for term in terms), torch.zeros((), device=logits.device))

    return total


def glacier_fraction(masks: torch.Tensor) -> torch.Tensor:
    """(N,H,W) masks -> (N,1) fraction of glacier pixels, the auxiliary head's target."""
    return masks.float().mean(dim=(-2, -1)).unsqueeze(1)


def auxiliary_loss(aux_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the auxiliary logit and the tile's glacier fraction."""
    return F.binary_cross_entropy_with_logits(aux_logits.float(), glacier_fraction(masks))
