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
keeps it defined for tiles without glacier. Targets are tile masks (uint8):
pixels without a label (255, :mod:`glaciermap.labels`) are left out of every
term, so their logits get no gradient and changing them changes no loss. The
auxiliary head's loss is binary cross-entropy between its logit and the tile's
glacier fraction over its labelled pixels.

Written here, not taken from ``segmentation_models_pytorch.losses``, because
smp does not give the same numbers (checked on a fixed batch): its ``DiceLoss``
is 0 on a batch without glacier, its ``SoftBCEWithLogitsLoss`` averages over the
ignored pixels too, and its multi-class ``FocalLoss`` is a one-vs-all sigmoid
loss; only its binary focal loss agrees (to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from glaciermap.labels import GLACIER, NODATA
from glaciermap.runs import Activation
from glaciermap.training.settings import LOSSES, Loss

FOCAL_GAMMA = 2.0
_DICE_SMOOTH = 1.0

SegLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of per-pixel values over the labelled pixels (0 when there are none)."""
    return (values * valid).sum() / valid.sum().clamp_min(1)


def _soft_dice(
    probability: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    probability = probability * valid
    intersection = (probability * target).sum()
    total = probability.sum() + target.sum()
    return 1 - (2 * intersection + _DICE_SMOOTH) / (total + _DICE_SMOOTH)


def _binary_ce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _mean(F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none"), valid)


def _binary_dice(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _soft_dice(torch.sigmoid(logits[:, 0]), target, valid)


def _binary_focal(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    ce = F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none")
    p_true = torch.exp(-ce)  # probability given to the true class
    return _mean((1 - p_true) ** FOCAL_GAMMA * ce, valid)


def _softmax_ce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _mean(F.cross_entropy(logits, target.long(), reduction="none"), valid)


def _softmax_dice(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _soft_dice(torch.softmax(logits, dim=1)[:, 1], target, valid)


def _softmax_focal(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target.long(), reduction="none")
    p_true = torch.exp(-ce)
    return _mean((1 - p_true) ** FOCAL_GAMMA * ce, valid)


LossTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_TABLE: dict[tuple[str, str], list[LossTerm]] = {
    ("sigmoid", "bce"): [_binary_ce],
    ("sigmoid", "dice"): [_binary_dice],
    ("sigmoid", "bce+dice"): [_binary_ce, _binary_dice],
    ("sigmoid", "focal"): [_binary_focal],
    ("softmax", "bce"): [_softmax_ce],
    ("softmax", "dice"): [_softmax_dice],
    ("softmax", "bce+dice"): [_softmax_ce, _softmax_dice],
    ("softmax", "focal"): [_softmax_focal],
}


def labelled(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(target float 0/1, labelled bool) of tile masks; unlabelled pixels get target 0."""
    valid = masks != NODATA
    return (masks == GLACIER).float(), valid


def segmentation_loss(loss: Loss, activation: Activation) -> SegLoss:
    """The loss ``f(mask_logits (N,C,H,W), masks uint8 (N,H,W): 0, 1 or 255) -> scalar``."""
    try:
        terms = _TABLE[(activation, loss)]
    except KeyError:
        raise ValueError(
            f"unknown loss {loss!r} / activation {activation!r}; losses: {', '.join(LOSSES)}"
        ) from None

    def total(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        # Losses in float32 even under bf16 autocast: sums over many pixels.
        logits = logits.float()
        target, valid = labelled(masks)
        zero = torch.zeros((), device=logits.device)
        return sum((term(logits, target, valid) for term in terms), zero)

    return total


def glacier_fraction(masks: torch.Tensor) -> torch.Tensor:
    """(N,H,W) masks -> (N,1) fraction of glacier among labelled pixels, the aux target."""
    target, valid = labelled(masks)
    return (target.sum(dim=(-2, -1)) / valid.sum(dim=(-2, -1)).clamp_min(1)).unsqueeze(1)


def auxiliary_loss(aux_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the auxiliary logit and the tile's glacier fraction."""
    return F.binary_cross_entropy_with_logits(aux_logits.float(), glacier_fraction(masks))
