"""A model's input normalisation, the same object in training and in prediction.

The checkpoint stores it as ``{"mode": "dataset", "mean": [4], "std": [4]}`` or
``{"mode": "scene", "percentiles": [2, 98]}`` (:mod:`glaciermap.data.normalization`
explains both). In ``scene`` mode each input comes with the robust range of the
scene it belongs to: the tiles carry theirs (``TileSet.ranges``), and prediction
computes the scene's with :func:`glaciermap.data.normalization.scene_range`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from glaciermap.data.normalization import MIN_SPAN, ROBUST_PERCENTILES, Normalization

MIN_STD = 1e-6  # a constant band must not divide by zero


class Normalizer:
    """Turns unnormalised bands (N, B, H, W) into the model's input."""

    def __init__(self, spec: Mapping[str, Any], n_bands: int, device: torch.device) -> None:
        self.mode: Normalization = spec.get("mode", "dataset")
        self.n_bands = n_bands
        shape = (1, n_bands, 1, 1)
        if self.mode == "dataset":
            mean = [float(v) for v in spec["mean"]]
            std = [float(v) for v in spec["std"]]
            if len(mean) != n_bands or len(std) != n_bands:
                raise ValueError(f"normalization needs {n_bands} means and stds")
            if any(not s > 0 for s in std):
                raise ValueError(f"normalization std must be positive, got {std}")
            self.spec: dict[str, Any] = {"mode": "dataset", "mean": mean, "std": std}
            self._mean = torch.tensor(mean, device=device).view(shape)
            self._std = torch.tensor(std, device=device).view(shape)
        elif self.mode == "scene":
            percentiles = [float(p) for p in spec.get("percentiles", ROBUST_PERCENTILES)]
            if percentiles != list(ROBUST_PERCENTILES):
                raise ValueError(f"scene normalization uses percentiles {ROBUST_PERCENTILES}")
            self.spec = {"mode": "scene", "percentiles": percentiles}
        else:
            raise ValueError(f"unknown normalization mode {self.mode!r}")

    @classmethod
    def for_training(
        cls,
        mode: Normalization,
        stats: Mapping[str, Sequence[float]],
        n_bands: int,
        device: torch.device,
    ) -> Normalizer:
        """``dataset``: the pooled train-tile mean/std (std floored); ``scene``: per-tile ranges."""
        if mode == "dataset":
            std = [max(float(s), MIN_STD) for s in stats["std"]]
            return cls({"mode": "dataset", "mean": stats["mean"], "std": std}, n_bands, device)
        return cls({"mode": mode}, n_bands, device)

    @property
    def needs_ranges(self) -> bool:
        """True when every input needs the robust range of its scene."""
        return self.mode == "scene"

    def __call__(self, x: torch.Tensor, ranges: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``x`` (N, B, H, W); ``ranges`` (N, B, 2) or (B, 2) in ``scene`` mode."""
        if self.mode == "dataset":
            return (x - self._mean) / self._std
        if ranges is None:
            raise ValueError("scene normalization needs the robust range of the scene")
        ranges = ranges.to(x.device, torch.float32)
        if ranges.ndim == 2:
            ranges = ranges.unsqueeze(0)
        low = ranges[..., 0].unsqueeze(-1).unsqueeze(-1)
        span = (ranges[..., 1] - ranges[..., 0]).clamp_min(MIN_SPAN).unsqueeze(-1).unsqueeze(-1)
        return 2.0 * (x - low) / span - 1.0
