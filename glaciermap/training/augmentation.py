"""Augmentation of tiles (default blue, green, red, NIR) and their masks, on batches.

Geometric transforms (horizontal flip, vertical flip, 90-degree rotations) are
drawn once per tile and applied to the image *and* its mask, so they stay
aligned. Colour jitter follows torchvision's ``ColorJitter`` (brightness,
contrast, saturation, hue, each drawn per tile) extended to more bands. Jitter
acts on the spectral channels only (:mod:`glaciermap.channels`); elevation,
slope and band indices are measurements of the ground, not of illumination, and
flips and 90-degree turns leave them valid (slope has no direction; aspect is
not a channel for that reason):

- brightness multiplies all spectral bands by the same factor;
- contrast pulls every spectral band towards its tile mean by the same factor
  (the RGB bands towards the mean luminance, as torchvision does, the others,
  e.g. NIR and SWIR, towards their own mean), so they change consistently with
  the visible bands;
- saturation and hue are colour notions and act on the RGB bands only:
  saturation blends each pixel with its luminance, hue rotates the chroma
  plane of the YIQ colour space by ``2 * pi * h`` (a linear stand-in for the
  HSV hue shift that also works on reflectances above 1); without all three
  RGB bands there is no saturation or hue.

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
from collections.abc import Sequence

import torch

from glaciermap.channels import DEFAULT_CHANNELS, channel_kind
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


def _luminance(images: torch.Tensor, rgb: tuple[int, int, int]) -> torch.Tensor:
    """(N,1,H,W) luminance of the RGB bands at positions ``rgb`` (red, green, blue)."""
    r, g, b = _LUMA
    red, green, blue = rgb
    return (r * images[:, red] + g * images[:, green] + b * images[:, blue]).unsqueeze(1)


def _hue_rotation(
    images: torch.Tensor, turns: torch.Tensor, positions: tuple[int, int, int]
) -> torch.Tensor:
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
    red, green, blue = positions
    rgb = images[:, [red, green, blue]]
    shifted = torch.einsum("nij,njhw->nihw", matrix, rgb)
    out = images.clone()
    out[:, red], out[:, green], out[:, blue] = shifted[:, 0], shifted[:, 1], shifted[:, 2]
    return out


def color_jitter(
    images: torch.Tensor,
    jitter: dict[str, float],
    generator: torch.Generator,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> torch.Tensor:
    """Colour jitter of the unnormalised reflectances of the spectral ``channels``
    (see the module docstring); other channels pass unchanged."""
    if len(channels) != images.shape[1]:
        raise ValueError(f"{images.shape[1]} channels in the tiles, named {list(channels)}")
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

    spectral = [i for i, c in enumerate(channels) if channel_kind(c) == "spectral"]
    if not spectral:
        return images
    names = list(channels)
    has_rgb = all(c in names for c in ("red", "green", "blue"))
    rgb = (names.index("red"), names.index("green"), names.index("blue")) if has_rgb else None

    # Jitter a copy of the spectral bands, the others pass through.
    only_spectral = len(spectral) == len(channels)
    bands = images if only_spectral else images[:, spectral]
    out = bands * brightness
    local = {i: k for k, i in enumerate(spectral)}  # channel position -> position in ``out``
    local_rgb = None if rgb is None else (local[rgb[0]], local[rgb[1]], local[rgb[2]])
    rgb_mean = (
        None
        if local_rgb is None
        else _luminance(out, local_rgb).mean(dim=(-2, -1), keepdim=True)  # (N,1,1,1)
    )
    means = []
    for k in range(out.shape[1]):
        if rgb_mean is not None and local_rgb is not None and k in local_rgb:
            means.append(rgb_mean)
        else:
            means.append(out[:, k : k + 1].mean(dim=(-2, -1), keepdim=True))
    band_mean = torch.cat(means, dim=1)
    out = contrast * out + (1 - contrast) * band_mean
    if local_rgb is not None:
        gray = _luminance(out, local_rgb)
        red, green, blue = local_rgb
        order = [blue, green, red]
        out[:, order] = saturation * out[:, order] + (1 - saturation) * gray
        if h > 0:
            out = _hue_rotation(out, hue, local_rgb)
    out = out.clamp_min(0.0)
    if only_spectral:
        return out
    result = images.clone()
    result[:, spectral] = out
    return result


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometric transforms on images and masks together, then colour jitter on the
    spectral channels of the images."""
    images, masks = geometric(images, masks, params, generator)
    return color_jitter(images, params.jitter, generator, channels), masks


def concat_augmented(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
    batch_size: int = 256,
    channels: Sequence[str] = DEFAULT_CHANNELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's mode: one augmented copy of every tile appended to the originals."""
    parts_i, parts_m = [images], [masks]
    for start in range(0, images.shape[0], batch_size):
        aug_i, aug_m = augment(
            images[start : start + batch_size],
            masks[start : start + batch_size],
            params,
            generator,
            channels,
        )
        parts_i.append(aug_i)
        parts_m.append(aug_m)
    return torch.cat(parts_i), torch.cat(parts_m)
