"""Losses for one-channel (sigmoid) and two-channel (softmax) outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from glaciermap.labels import NODATA
from glaciermap.training.losses import (
    LOSSES,
    auxiliary_loss,
    glacier_fraction,
    segmentation_loss,
)


def target() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, 8, 8, generator=g) > 0.6).float()


def logits_for(target: torch.Tensor, activation: str, confidence: float) -> torch.Tensor:
    """Logits that predict ``target`` with the given strength (negative = wrong)."""
    signed = confidence * (2 * target - 1)
    if activation == "sigmoid":
        return signed.unsqueeze(1)
    return torch.stack([-signed / 2, signed / 2], dim=1)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_good_predictions_cost_less_and_gradients_flow(loss, activation):
    y = target()
    fn = segmentation_loss(loss, activation)
    good = logits_for(y, activation, 4.0).requires_grad_()
    bad = logits_for(y, activation, -4.0)
    value = fn(good, y)
    assert value.ndim == 0 and torch.isfinite(value)
    assert value < fn(bad, y)
    value.backward()
    assert good.grad is not None and good.grad.abs().sum() > 0


def test_softmax_losses_equal_sigmoid_losses_on_equivalent_logits():
    """softmax over (0, z) is sigmoid(z): the two families must agree there."""
    y = target()
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    two = torch.cat([torch.zeros_like(z), z], dim=1)
    for loss in LOSSES:
        binary = segmentation_loss(loss, "sigmoid")(z, y)
        softmax = segmentation_loss(loss, "softmax")(two, y)
        assert torch.allclose(binary, softmax, atol=1e-5), loss


def test_bce_is_torch_bce_and_focal_discounts_easy_pixels():
    y = target()
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    bce = segmentation_loss("bce", "sigmoid")(z, y)
    assert torch.allclose(bce, F.binary_cross_entropy_with_logits(z[:, 0], y))
    assert segmentation_loss("focal", "sigmoid")(z, y) < bce
    both = segmentation_loss("bce+dice", "sigmoid")(z, y)
    assert torch.allclose(both, bce + segmentation_loss("dice", "sigmoid")(z, y))


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="lovasz"):
        segmentation_loss("lovasz", "sigmoid")


def test_auxiliary_target_is_the_glacier_fraction():
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, :2] = 1
    assert torch.equal(glacier_fraction(masks), torch.tensor([[0.5], [0.0]]))
    right = torch.tensor([[0.0], [-20.0]])  # sigmoid 0.5 and ~0
    wrong = torch.tensor([[-20.0], [20.0]])
    assert auxiliary_loss(right, masks) < auxiliary_loss(wrong, masks)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_unlabelled_pixels_do_not_change_the_loss(loss, activation):
    """Pixels marked 255 (nodata, uncertain label) neither count nor get a gradient."""
    y = target().to(torch.uint8)
    masks = y.clone()
    masks[:, :3] = NODATA
    fn = segmentation_loss(loss, activation)
    z = logits_for(y.float(), activation, 1.5).requires_grad_()
    reference = fn(z, masks)
    other = z.detach().clone()
    other[..., :3, :] = torch.randn_like(other[..., :3, :]) * 10  # any logits there
    assert torch.allclose(fn(other, masks), reference)
    # ... which equals the loss over the labelled pixels alone.
    assert torch.allclose(reference, fn(z[..., 3:, :], y[:, 3:]), atol=1e-6)
    reference.backward()
    assert z.grad[..., :3, :].abs().sum() == 0 and z.grad[..., 3:, :].abs().sum() > 0


def test_auxiliary_target_ignores_unlabelled_pixels():
    masks = torch.full((1, 4, 4), NODATA, dtype=torch.uint8)
    masks[0, 0] = torch.tensor([1, 1, 0, 0], dtype=torch.uint8)
    assert torch.equal(glacier_fraction(masks), torch.tensor([[0.5]]))
