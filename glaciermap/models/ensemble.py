"""An ensemble of prediction checkpoints: the seeds of one final run, or one checkpoint.

The one place that loads an ensemble's members, checks that they agree (one
band layout, one stored threshold unless a threshold is given) and combines
their glacier probabilities (mean, and standard deviation as the uncertainty).
Used by ``glaciermap predict`` and the map rules (``maps_predict``,
``maps_ensemble``) through :mod:`glaciermap.inference.maps`, and by chip
scoring (:mod:`glaciermap.evaluation.chips`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from glaciermap.data.normalization import ArrayBands
from glaciermap.errors import InputDataError
from glaciermap.models.checkpoint import Predictor, load_predictor
from glaciermap.utils.device import resolve_device


class HasBands(Protocol):
    """An image to predict whole, e.g. a chip: (C, H, W) float32 channels, NaN nodata."""

    bands: np.ndarray


def mean_and_spread(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) over the members (axis 0), float32."""
    if len(probabilities) == 1:
        return probabilities[0], np.zeros_like(probabilities[0])
    mean = probabilities.mean(axis=0, dtype=np.float64)
    spread = np.sqrt(((probabilities - mean) ** 2).mean(axis=0))
    return mean.astype(np.float32), spread.astype(np.float32)


class CheckpointEnsemble:
    """One or more checkpoints: glacier where their mean probability >= :attr:`threshold`.

    ``threshold`` None takes the one the checkpoints store, which must then be
    the same for all; ``memory_format`` is the members' weight layout (the map
    engine's channels-last, or PyTorch's default).
    """

    def __init__(
        self,
        checkpoints: Sequence[str | Path],
        device: str = "auto",
        threshold: float | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if not checkpoints:
            raise InputDataError("no checkpoint given")
        target = resolve_device(device, "training.device / --device")
        self.paths = [str(path) for path in checkpoints]
        self.members: list[Predictor] = [load_predictor(path, target) for path in checkpoints]
        for member in self.members:
            member.model.to(memory_format=memory_format)
        for path, member in zip(self.paths[1:], self.members[1:], strict=True):
            if member.bands != self.bands:
                raise InputDataError(
                    f"{path}: band layout {member.bands} differs from {self.paths[0]} "
                    f"{self.bands}; an ensemble's members must share one"
                )
        self.threshold = self._threshold(threshold)

    @property
    def bands(self) -> list[str]:
        """The band layout every member reads."""
        return self.members[0].bands

    @property
    def model_names(self) -> str:
        """The members' architectures, e.g. ``fpn`` or ``fpn+pspnet``."""
        return "+".join(dict.fromkeys(member.spec.name for member in self.members))

    def _threshold(self, configured: float | None) -> float:
        """The configured threshold, else the one the checkpoints store (all the same)."""
        if configured is not None:
            return float(configured)
        stored = sorted({float(member.threshold) for member in self.members})
        if len(stored) > 1:
            raise InputDataError(
                f"checkpoints {', '.join(self.paths)} store different thresholds {stored}: "
                "set inference.threshold (--threshold)"
            )
        return stored[0]

    def describe(self) -> dict[str, Any]:
        """What an evaluation JSON records about the model."""
        return {
            "checkpoints": self.paths,
            "n_members": len(self.members),
            "threshold": self.threshold,
        }

    def probability(self, bands: np.ndarray) -> np.ndarray:
        """Mean glacier probability (H, W) of (C, H, W) unnormalised channels (NaN nodata),
        each member normalising the image by its own range where it needs one."""
        x = torch.from_numpy(np.ascontiguousarray(bands, dtype=np.float32))[None]
        total = np.zeros(bands.shape[1:], dtype=np.float32)
        for member in self.members:
            member.prepare(ArrayBands(bands))
            total += member.predict_proba(x)[0].float().cpu().numpy()
        return total / len(self.members)

    def __call__(self, image: HasBands) -> np.ndarray:
        """(H, W) bool glacier mask of a whole image."""
        return self.probability(image.bands) >= self.threshold
