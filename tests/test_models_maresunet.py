"""MAResUNet: shapes, gradient flow, and the linear attention formula of the paper."""

from __future__ import annotations

import pytest
import torch

from glaciermap.models.maresunet import AttentionBlock, LinearAttention, build_maresunet
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

torch.set_num_threads(1)


def spec(**kwargs) -> ModelSpec:
    return ModelSpec("maresunet", HParams(0.3, "softmax", "max"), encoder="resnet18", **kwargs)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (32, 128)])
def test_logits_have_the_input_size(size: tuple[int, int]) -> None:
    model = build_maresunet(spec()).eval()
    with torch.no_grad():
        masks, aux = model(torch.randn(2, 4, *size))
    assert masks.shape == (2, 2, *size)
    assert aux.shape == (2, 1)


def test_every_parameter_gets_a_finite_gradient() -> None:
    torch.manual_seed(0)
    model = build_maresunet(spec(extra={"decoder_channels": [64, 32, 16, 16, 8]}))
    # the attention scales start at 0 (identity blocks); open them so that the
    # attention weights are on the gradient path too
    for module in model.modules():
        if isinstance(module, AttentionBlock):
            torch.nn.init.constant_(module.position_scale, 0.5)
            torch.nn.init.constant_(module.channel_scale, 0.5)
    masks, aux = model(torch.randn(2, 4, 64, 64))
    (masks.square().mean() + aux.square().mean()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_linear_attention_matches_the_taylor_formula() -> None:
    torch.manual_seed(0)
    attention = LinearAttention(channels=8, reduction=2)
    x = torch.randn(2, 8, 3, 5)
    q = torch.nn.functional.normalize(attention.query(x).flatten(2), dim=1)
    k = torch.nn.functional.normalize(attention.key(x).flatten(2), dim=1)
    v = attention.value(x).flatten(2)
    # explicit O(N^2) form: softmax(q.k) ~ (1 + q.k), normalised over j
    weights = 1 + torch.einsum("bkn,bkm->bnm", q, k)
    expected = torch.einsum("bnm,bcm->bcn", weights / weights.sum(-1, keepdim=True), v)
    torch.testing.assert_close(attention(x), expected.view(2, 8, 3, 5), rtol=1e-4, atol=1e-5)


def test_decoder_channels_are_configurable() -> None:
    model = build_maresunet(spec(extra={"decoder_channels": [32, 16, 16, 8, 8]}))
    assert model.segmentation_head.in_channels == 8
    masks, _ = model.eval()(torch.randn(1, 4, 64, 64))
    assert masks.shape == (1, 2, 64, 64)
