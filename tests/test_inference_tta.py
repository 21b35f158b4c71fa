"""Test-time augmentation: transforms are undone exactly, equivariant models are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_inference_sliding_window import ArraySource, PixelwisePredictor, assemble

from glaciermap.inference.settings import InferenceSettings
from glaciermap.inference.tta import TRANSFORMS, apply, predict_tta, undo


class RowPositionPredictor:
    """Probability = the row's position in the window: not equivariant to flips."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        rows = (torch.arange(x.shape[2], dtype=torch.float32) + 0.5) / x.shape[2]
        return rows[None, :, None].expand(x.shape[0], -1, x.shape[3]).clone()


class GradientPredictor:
    """sigmoid of the left-to-right difference of the blue band: direction matters."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        diff = torch.nn.functional.pad(x[:, 0, :, 1:] - x[:, 0, :, :-1], (0, 1))
        return torch.sigmoid(3 * diff)


def test_transforms_are_distinct_and_undone_exactly():
    x = torch.arange(2 * 3 * 32 * 64, dtype=torch.float32).reshape(2, 3, 32, 64)
    images = set()
    for transform in TRANSFORMS["d4"]:
        moved = apply(x, transform)
        images.add(moved.numpy().tobytes())
        assert torch.equal(undo(moved, transform), x)
        assert torch.equal(undo(moved[:, 0], transform), x[:, 0])  # on (N, H, W) maps too
    assert len(images) == 8
    assert set(TRANSFORMS["flips"]) < set(TRANSFORMS["d4"])
    assert len(set(TRANSFORMS["flips"])) == 4


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_a_pointwise_model_gives_identical_maps_with_and_without_tta(tta):
    array = np.random.default_rng(0).normal(size=(4, 150, 170)).astype(np.float32)
    settings = InferenceSettings(window=64, margin=16, batch_size=3, block_size=80)
    plain = assemble(ArraySource(array), [PixelwisePredictor()], settings)
    augmented = assemble(
        ArraySource(array),
        [PixelwisePredictor()],
        InferenceSettings(window=64, margin=16, batch_size=3, block_size=80, tta=tta),
    )
    assert np.array_equal(plain, augmented)


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_tta_changes_the_map_of_a_model_that_is_not_equivariant(tta):
    array = np.random.default_rng(1).normal(size=(4, 150, 170)).astype(np.float32)
    plain = assemble(
        ArraySource(array), [GradientPredictor()], InferenceSettings(window=64, margin=16)
    )
    augmented = assemble(
        ArraySource(array), [GradientPredictor()], InferenceSettings(window=64, margin=16, tta=tta)
    )
    assert np.abs(plain - augmented).mean() > 0.05


def test_flips_average_a_row_ramp_to_its_middle():
    """Up-down flips undone and averaged: (r + 0.5) / H and its mirror mean 0.5."""
    x = torch.zeros(2, 4, 64, 96)
    plain = predict_tta(RowPositionPredictor().predict_proba, x, "none")
    assert plain[0, 0, 0] == pytest.approx(0.5 / 64) and plain[0, -1, 0] == pytest.approx(
        1 - 0.5 / 64
    )
    assert torch.allclose(
        predict_tta(RowPositionPredictor().predict_proba, x, "flips"), torch.full((2, 64, 96), 0.5)
    )
