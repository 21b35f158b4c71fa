"""TensorBoard pictures: validation tiles with the reference and the prediction overlaid."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from glaciermap.channels import DEFAULT_CHANNELS
from glaciermap.labels import GLACIER

_RED = (1.0, 0.0, 0.0)
_CYAN = (0.0, 1.0, 1.0)


def rgb_display(images: torch.Tensor, channels: Sequence[str] = DEFAULT_CHANNELS) -> torch.Tensor:
    """(N,C,H,W) tiles -> (N,3,H,W) in 0..1, stretched per tile (2-98 percentile): the
    red, green and blue channels, or the first channel in grey when one is missing."""
    names = list(channels)
    if all(c in names for c in ("red", "green", "blue")):
        picked = [names.index("red"), names.index("green"), names.index("blue")]
    else:
        picked = [0, 0, 0]
    rgb = images[:, picked].float()
    flat = rgb.flatten(1)
    low = torch.quantile(flat, 0.02, dim=1).view(-1, 1, 1, 1)
    high = torch.quantile(flat, 0.98, dim=1).view(-1, 1, 1, 1)
    return ((rgb - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)


def _overlay(rgb: torch.Tensor, mask: torch.Tensor, colour: tuple[float, ...]) -> torch.Tensor:
    tint = rgb.new_tensor(colour).view(1, 3, 1, 1)
    alpha = 0.5 * mask.float().unsqueeze(1)
    return rgb * (1 - alpha) + tint * alpha


def overlay_panels(
    images: torch.Tensor,
    masks: torch.Tensor,
    probability: torch.Tensor,
    threshold: float = 0.5,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> torch.Tensor:
    """One (3, N*H, 4*W) picture: a row per tile of RGB | reference (cyan) | probability |
    prediction (red)."""
    rgb = rgb_display(images, channels)
    prob = probability.float().unsqueeze(1).expand(-1, 3, -1, -1)
    panels = [
        rgb,
        _overlay(rgb, masks == GLACIER, _CYAN),
        prob,
        _overlay(rgb, probability >= threshold, _RED),
    ]
    rows = torch.cat(panels, dim=-1)  # (N, 3, H, 4W)
    return torch.cat(list(rows), dim=-2).cpu()
