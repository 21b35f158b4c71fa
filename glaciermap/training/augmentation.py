"""Augmentation of 4-band tiles (blue, green, red, NIR) and their masks, on batches.

Geometric transforms (horizontal flip, vertical flip, 90-degree rotations) are
drawn once per tile and applied to the image *and* its mask, so they stay
aligned. Colour jitter follows torchvision's ``ColorJitter`` (brightness,
contrast, saturation, hue, each drawn per tile) extended to four bands:

- brightness multiplies all four bands by the same factor;
- contrast pulls every band towards its tile mean by the same factor (the RGB
  bands towards the mean luminance, as torchvision does, NIR towards its own
  mean), so NIR changes consistently with the visible bands;
- saturation and hue are colour notions and act on the RGB bands only:
  saturation blends each pixel with its luminance, hue rotates the chroma
  plane of the YIQ colour space by ``2 * pi * h`` (a linear stand-in for the
  HSV hue shift that also works on reflectances above 1).

Values are clamped at 0 (reflectance is not negative), not at 1, because snow
and ice are often brighter than 1 in surface reflectance. Jitter is applied to
the unnormalised reflectances, before normalisation. The jitter order is fixed
(brightness, contrast, saturation, hue) so that a seed fixes the result.
Hand-written because kornia is not a dependency and colour-jitter libraries
(kornia, torchvision) expect three RGB bands in [0, 1], not four bands of
reflectance above 1.
"""

from __future__ import annotations

import math

import torch

from glaciermap.bands import BLUE, GREEN, NIR, RED
from glaciermap.training.settings import AugmentParams

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)  # red, green, blue

# RGB (red, green, blue) <-> YIQ; Y is the luma above, I and Q span the chroma plane.
_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_TO_RGB = torch.linalg.inv(_TO_YIQ)


def _where_tile(chosen: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per-tile choice between two batches; ``chosen`` is a (N,) bool tensor."""
    shape = (-1,) + (1,) * (old.dim() - 1)
    return torch.where(chosen.view(shape), new, old)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def geometric(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip/rotate each tile and its mask together. images (N,C,H,W), masks (N,H,W)."""
    n = images.shape[0]
    # Draw every random number on the CPU generator, whatever the device, so a
    # seed gives the same augmentation on CPU and GPU.
    hflip = (torch.rand(n, generator=generator) < params.hflip).to(images.device)
    vflip = (torch.rand(n, generator=generator) < params.vflip).to(images.device)
    turns = torch.randint(0, 4, (n,), generator=generator).to(images.device)
    images = _where_tile(hflip, images.flip(-1), images)
    masks = _where_tile(hflip, masks.flip(-1), masks)
    images = _where_tile(vflip, images.flip(-2), images)
    masks = _where_tile(vflip, masks.flip(-2), masks)
    if params.rot90 and images.shape[-1] == images.shape[-2]:
        rotated_images, rotated_masks = images, masks
        for k in (1, 2, 3):
            chosen = turns == k
            rotated_images = _where_tile(chosen, torch.rot90(images, k, (-2, -1)), rotated_images)
            rotated_masks = _where_tile(chosen, torch.rot90(masks, k, (-2, -1)), rotated_masks)
        images, masks = rotated_images, rotated_masks
    return images, masks


def _luminance(images: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) luminance of the RGB bands."""
    r, g, b = _LUMA
    return (r * images[:, RED] + g * images[:, GREEN] + b * images[:, BLUE]).unsqueeze(1)


def _hue_rotation(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma (I, Q) of the RGB bands in YIQ space by 2*pi*turns per tile."""
    to_yiq = _TO_YIQ.to(images)
    to_rgb = _TO_RGB.to(images)
    angle = 2 * math.pi * turns.to(images.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rotation = torch.stack(
        [
            torch.stack([one, zero, zero], -1),
            torch.stack([zero, cos, -sin], -1),
            torch.stack([zero, sin, cos], -1),
        ],
        -2,
    )  # (N,3,3)
    matrix = to_rgb @ rotation @ to_yiq  # (N,3,3) acting on (r,g,b)
    rgb = images[:, [RED, GREEN, BLUE]]
    shifted = torch.einsum("nij,njhw->nihw", matrix, rgb)
    out = images.clone()
    out[:, RED], out[:, GREEN], out[:, BLUE] = shifted[:, 0], shifted[:, 1], shifted[:, 2]
    return out


def color_jitter(
    images: torch.Tensor, jitter: dict[str, float], generator: torch.Generator
) -> torch.Tensor:
    """4-band colour jitter of unnormalised reflectances (see the module docstring)."""
    n = images.shape[0]
    device = images.device
    shape = (n, 1, 1, 1)
    b, c = jitter.get("brightness", 0.0), jitter.get("contrast", 0.0)
    s, h = jitter.get("saturation", 0.0), jitter.get("hue", 0.0)
    # Draw all factors up front, in a fixed order, so every tile uses the same
    # number of random values whatever the strengths are.
    brightness = _uniform(n, max(0.0, 1 - b), 1 + b, generator).to(device).view(shape)
    contrast = _uniform(n, max(0.0, 1 - c), 1 + c, generator).to(device).view(shape)
    saturation = _uniform(n, max(0.0, 1 - s), 1 + s, generator).to(device).view(shape)
    hue = _uniform(n, -h, h, generator).to(device)

    out = images * brightness
    rgb_mean = _luminance(out).mean(dim=(-2, -1), keepdim=True)  # (N,1,1,1)
    nir_mean = out[:, NIR : NIR + 1].mean(dim=(-2, -1), keepdim=True)
    band_mean = torch.cat([rgb_mean, rgb_mean, rgb_mean, nir_mean], dim=1)
    out = contrast * out + (1 - contrast) * band_mean
    gray = _luminance(out)
    rgb = [BLUE, GREEN, RED]
    out[:, rgb] = saturation * out[:, rgb] + (1 - saturation) * gray
    if h > 0:
        out = _hue_rotation(out, hue)
    return out.clamp_min(0.0)


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometric transforms on images and masks together, then colour jitter on the images."""
    images, masks = geometric(images, masks, params, generator)
    return color_jitter(images, params.jitter, generator), masks


def concat_augmented(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's mode: one augmented copy of every tile appended to the originals."""
    parts_i, parts_m = [images], [masks]
    for start in range(0, images.shape[0], batch_size):
        aug_i, aug_m = augment(
            images[start : start + batch_size], masks[start : start + batch_size], params, generator
        )
        parts_i.append(aug_i)
        parts_m.append(aug_m)
    return torch.cat(parts_i), torch.cat(parts_m)
