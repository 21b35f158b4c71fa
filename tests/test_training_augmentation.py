"""Augmentation keeps masks aligned with images and treats the four bands consistently."""

from __future__ import annotations

import pytest
import torch

from glaciermap.bands import BLUE, GREEN, NIR, RED
from glaciermap.training.augmentation import (
    AugmentParams,
    augment,
    color_jitter,
    concat_augmented,
    geometric,
)

NO_JITTER = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def tiles(n: int = 16, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images whose mask is a function of band 0, so alignment can be checked."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 4, size, size, generator=g)
    return images, (images[:, 0] > 0.5).to(torch.uint8)


def generator(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "params",
    [
        AugmentParams(hflip=1.0, jitter=NO_JITTER),
        AugmentParams(hflip=0.0, vflip=1.0, jitter=NO_JITTER),
        AugmentParams(hflip=0.5, vflip=0.5, rot90=True, jitter=NO_JITTER),
    ],
)
def test_geometric_transforms_move_image_and_mask_together(params):
    images, masks = tiles()
    moved_images, moved_masks = geometric(images, masks, params, generator())
    assert not torch.equal(moved_images, images)
    assert torch.equal(moved_masks, (moved_images[:, 0] > 0.5).to(torch.uint8))
    # every tile is a flip/rotation of its own original
    for before, after in zip(images, moved_images, strict=True):
        candidates = [
            torch.rot90(v, k, (-2, -1)) for v in (before, before.flip(-1)) for k in range(4)
        ]
        assert any(torch.equal(after, c) for c in candidates)


def test_full_augmentation_keeps_mask_aligned_with_geometry():
    """With jitter on, each mask pixel still belongs to the image pixel that moved there."""
    images, masks = tiles()
    # NIR = pixel index (+ offset so that contrast never clamps): brightness and
    # contrast are increasing maps, so ranking NIR recovers where each pixel came from.
    index = torch.arange(16 * 16, dtype=torch.float32).view(1, 16, 16).expand(16, 16, 16)
    marked = images.clone()
    marked[:, NIR] = index + 1000
    params = AugmentParams(hflip=0.5, vflip=0.5, rot90=True)
    moved_images, moved_masks = augment(marked, masks, params, generator())
    came_from = moved_images[:, NIR].flatten(1).argsort(1).argsort(1)
    expected = masks.flatten(1).gather(1, came_from).view_as(moved_masks)
    assert torch.equal(moved_masks, expected)
    assert not torch.equal(moved_masks, masks)


def test_horizontal_flip_probability_is_respected():
    images, masks = tiles(n=2000, size=4)
    moved, _ = geometric(images, masks, AugmentParams(hflip=0.5, jitter=NO_JITTER), generator())
    flipped = (moved != images).flatten(1).any(1).float().mean().item()
    assert 0.45 < flipped < 0.55


def test_zero_jitter_is_identity():
    images, _ = tiles()
    assert torch.allclose(color_jitter(images, NO_JITTER, generator()), images, atol=1e-6)


def test_brightness_scales_all_four_bands_alike():
    images, _ = tiles()
    out = color_jitter(images, {**NO_JITTER, "brightness": 0.25}, generator())
    ratio = out / images
    per_tile = ratio.flatten(1)
    assert torch.allclose(per_tile, per_tile[:, :1].expand_as(per_tile), atol=1e-5)
    assert ((per_tile[:, 0] >= 0.75 - 1e-6) & (per_tile[:, 0] <= 1.25 + 1e-6)).all()
    assert per_tile[:, 0].std() > 0  # factors differ between tiles


def test_contrast_changes_nir_with_the_same_factor():
    images, _ = tiles()
    images = images + 1.0  # away from 0, where values are clamped
    out = color_jitter(images, {**NO_JITTER, "contrast": 0.25}, generator())
    nir_in, nir_out = images[:, NIR], out[:, NIR]
    nir_factor = (nir_out - nir_out.mean((-2, -1), keepdim=True)) / (
        nir_in - nir_in.mean((-2, -1), keepdim=True)
    )
    red_in, red_out = images[:, RED], out[:, RED]
    red_factor = (red_out[:, 0, 0] - red_out[:, 0, 1]) / (red_in[:, 0, 0] - red_in[:, 0, 1])
    assert torch.allclose(nir_factor[:, 0, 0], red_factor, atol=1e-4)


@pytest.mark.parametrize("kind", ["saturation", "hue"])
def test_saturation_and_hue_touch_rgb_only(kind):
    images, _ = tiles()
    out = color_jitter(images, {**NO_JITTER, kind: 0.25}, generator())
    assert torch.equal(out[:, NIR], images[:, NIR])
    assert not torch.allclose(out[:, [RED, GREEN, BLUE]], images[:, [RED, GREEN, BLUE]])


def test_saturation_keeps_grey():
    images, _ = tiles()
    images = images + 1.0  # away from 0, where values are clamped
    out = color_jitter(images, {**NO_JITTER, "saturation": 1.0}, generator())
    grey_in = 0.299 * images[:, RED] + 0.587 * images[:, GREEN] + 0.114 * images[:, BLUE]
    grey_out = 0.299 * out[:, RED] + 0.587 * out[:, GREEN] + 0.114 * out[:, BLUE]
    assert torch.allclose(grey_in, grey_out, atol=1e-5)


def test_hue_keeps_luminance():
    images, _ = tiles()
    out = color_jitter(images + 1.0, {**NO_JITTER, "hue": 0.5}, generator())  # no clamping
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    before = ((images + 1.0)[:, [RED, GREEN, BLUE]] * luma).sum(1)
    after = (out[:, [RED, GREEN, BLUE]] * luma).sum(1)
    assert torch.allclose(before, after, atol=1e-4)


def test_same_seed_same_augmentation():
    images, masks = tiles()
    params = AugmentParams(hflip=0.5, vflip=0.5, rot90=True)
    first = augment(images, masks, params, generator(3))
    second = augment(images, masks, params, generator(3))
    other = augment(images, masks, params, generator(4))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


def test_concat_keeps_originals_and_appends_one_copy_each():
    images, masks = tiles(n=5)
    all_images, all_masks = concat_augmented(images, masks, AugmentParams(), generator(), 2)
    assert all_images.shape[0] == 10 and all_masks.shape[0] == 10
    assert torch.equal(all_images[:5], images) and torch.equal(all_masks[:5], masks)
    assert not torch.equal(all_images[5:], images)
    assert (all_masks[5:].flatten(1).sum(1) == masks.flatten(1).sum(1)).all()
