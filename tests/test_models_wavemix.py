"""WaveMix: the Haar DWT, shapes and gradient flow."""

from __future__ import annotations

import pytest
import torch

from glaciermap.errors import ConfigError
from glaciermap.models.spec import ModelSpec
from glaciermap.models.wavemix import HaarDWT, build_wavemix
from glaciermap.runs import HParams

torch.set_num_threads(1)


def spec(**extra) -> ModelSpec:
    return ModelSpec("wavemix", HParams(0.3, "sigmoid", "mean"), extra=extra)


def test_haar_dwt_is_orthonormal_and_separates_frequencies() -> None:
    x = torch.randn(2, 3, 8, 6)
    bands = HaarDWT()(x)
    assert bands.shape == (2, 12, 4, 3)
    torch.testing.assert_close(bands.square().sum(), x.square().sum(), rtol=1e-5, atol=0)
    constant = HaarDWT()(torch.full((1, 1, 4, 4), 3.0))
    torch.testing.assert_close(constant[:, 0], torch.full((1, 2, 2), 6.0))  # LL = 2 * mean
    assert torch.count_nonzero(constant[:, 1:]) == 0  # no detail in a constant image
    stripes = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).repeat(2, 2).view(1, 1, 4, 4)
    # horizontal stripes change along rows only: they show in band 2 alone
    assert torch.count_nonzero(HaarDWT()(stripes)[:, [0, 1, 3]]) == 0


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (32, 160)])
def test_logits_have_the_input_size(size: tuple[int, int]) -> None:
    model = build_wavemix(spec()).eval()
    with torch.no_grad():
        masks, aux = model(torch.randn(2, 4, *size))
    assert masks.shape == (2, 1, *size)
    assert aux.shape == (2, 1)


@pytest.mark.parametrize("extra", [{}, {"dim": 16, "depth": 1, "stem_levels": 1, "mult": 4}])
def test_every_parameter_gets_a_finite_nonzero_gradient(extra: dict) -> None:
    torch.manual_seed(0)
    model = build_wavemix(spec(**extra))
    masks, aux = model(torch.randn(2, 4, 64, 64))
    (masks.square().mean() + aux.square().mean()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_the_filter_bank_is_fixed() -> None:
    model = build_wavemix(spec(depth=1))
    assert not any("filters" in name for name, _ in model.named_parameters())
    assert not any("filters" in key for key in model.state_dict())


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="wavemix"):
        build_wavemix(spec(dim=30))
    with pytest.raises(ConfigError, match="wavemix"):
        build_wavemix(spec(depth=0))
