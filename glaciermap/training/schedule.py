"""The learning rate of every optimizer step (``training.lr_schedule``).

- ``constant``: ``learning_rate`` throughout (the study's setting).
- ``warmup_cosine``: linear warm-up from ``learning_rate / WARMUP_START_DIVISOR``
  to ``learning_rate`` over ``warmup_epochs`` epochs, then half a cosine down
  to ``learning_rate * final_lr_fraction`` at the last step.

The rate is a function of the global step alone, so a run resumed from
``last.pt`` continues on the same curve without storing a scheduler. That is
why it is not torch's ``SequentialLR(LinearLR, CosineAnnealingLR)`` or timm's
``CosineLRScheduler``: both hold state that ``last.pt`` would have to carry, and
they compute the curve in another order (torch recursively), so the rates, and
a run's numbers, would differ in the last bits.
"""

from __future__ import annotations

import math

from glaciermap.training.settings import RunSettings

WARMUP_START_DIVISOR = 25.0  # as torch's OneCycleLR starts


def learning_rate(settings: RunSettings, step: int, steps_per_epoch: int) -> float:
    """The rate of optimizer step ``step`` (0-based) of a run of ``settings.epochs`` epochs."""
    peak = settings.learning_rate
    if settings.lr_schedule == "constant":
        return peak
    total = max(1, settings.epochs * steps_per_epoch)
    warmup = round(settings.warmup_epochs * steps_per_epoch)
    if step < warmup:
        start = peak / WARMUP_START_DIVISOR
        return start + (peak - start) * step / warmup
    floor = peak * settings.final_lr_fraction
    progress = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
