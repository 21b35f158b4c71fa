"""TensorBoard pictures: validation tiles with the reference and the prediction overlaid."""

from __future__ import annotations

import torch

from glaciermap.bands import BLUE, GREEN, RED
from glaciermap.labels import GLACIER

_RED = (1.0, 0.0, 0.0)
_CYAN = (0.0, 1.0, 1.0)


def rgb_display(images: torch.Tensor) -> torch.Tensor:
    """(N,4,H,W) reflectances -> (N,3,H,W) in 0..1, stretched per tile (2-98 percentile)."""
    rgb = images[:, [RED, GREEN, BLUE]].float()
    flat = rgb.flatten(1)
    low = torch.quantile(flat, 0.02, dim=1).view(-1, 1, 1, 1)
    high = torch.quantile(flat, 0.98, dim=1).view(-1, 1, 1, 1)
    return ((rgb - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)


def _overlay(rgb: torch.Tensor, mask: torch.Tensor, colour: tuple[float, ...]) -> torch.Tensor:
    tint = rgb.new_tensor(colour).view(1, 3, 1, 1)
    alpha = 0.5 * mask.float().unsqueeze(1)
    return rgb * (1 - alpha) + tint * alpha


def overlay_panels(
    images: torch.Tensor, masks: torch.Tensor, probability: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """One (3, N*H, 4*W) picture: a row per tile of RGB | reference (cyan) | probability |
    prediction (red)."""
    rgb = rgb_display(images)
    prob = probability.float().unsqueeze(1).expand(-1, 3, -1, -1)
    panels = [
        rgb,
        _overlay(rgb, masks == GLACIER, _CYAN),
        prob,
        _overlay(rgb, probability >= threshold, _RED),
    ]
    rows = torch.cat(panels, dim=-1)  # (N, 3, H, 4W)
    return torch.cat(list(rows), dim=-2).cpu()
