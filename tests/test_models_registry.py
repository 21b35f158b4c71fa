"""All nine architectures build with 4 bands, honour the forward contract and train."""

from __future__ import annotations

import pytest
import torch

from glaciermap.errors import ConfigError
from glaciermap.models.registry import (
    SMP_ARCHITECTURES,
    build_model,
    count_parameters,
    reflect_pad_to,
)
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import MODEL_NAMES, HParams

torch.set_num_threads(1)


def small_spec(name: str, activation: str = "sigmoid", **kwargs) -> ModelSpec:
    kwargs.setdefault("encoder", "resnet18")
    if name == "wavemix":
        kwargs.setdefault("extra", {"dim": 16, "depth": 2})
    return ModelSpec(name, HParams(0.2, activation, "mean"), **kwargs)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_for_multiples_of_32(name: str) -> None:
    for activation, channels in (("sigmoid", 1), ("softmax", 2)):
        model = build_model(small_spec(name, activation)).eval()
        with torch.no_grad():
            for height, width in ((64, 64), (96, 96), (64, 96)):
                masks, aux = model(torch.randn(1, 4, height, width))
                assert masks.shape == (1, channels, height, width)
                assert aux.shape == (1, 1)
                assert torch.isfinite(masks).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_no_aux_head_without_aux_loss_and_a_training_step_changes_weights(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(small_spec(name, "softmax", aux_weight=0.0))
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 4, 64, 64), torch.randint(0, 2, (2, 64, 64))
    masks, aux = model(x)
    assert aux is None
    loss = torch.nn.functional.cross_entropy(masks, y)
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    changed = [
        k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])
    ]
    assert len(changed) > len(before) // 2


def test_smp_models_have_random_weights_and_an_encoder() -> None:
    torch.manual_seed(1)
    first = build_model(small_spec("fpn"))
    torch.manual_seed(2)
    second = build_model(small_spec("fpn"))
    conv = "net.encoder.conv1.weight"
    assert first.state_dict()[conv].shape == (64, 4, 7, 7)
    assert not torch.equal(first.state_dict()[conv], second.state_dict()[conv])
    assert first.encoder is first.net.encoder


def test_extra_options_reach_the_architecture() -> None:
    spec = small_spec("fpn", extra={"decoder_segmentation_channels": 32})
    assert count_parameters(build_model(spec)) < count_parameters(build_model(small_spec("fpn")))
    wide = small_spec("wavemix", extra={"dim": 32, "depth": 2})
    assert count_parameters(build_model(wide)) > count_parameters(
        build_model(small_spec("wavemix"))
    )


@pytest.mark.parametrize("name", ["fpn", "maresunet", "wavemix"])
def test_unknown_extra_options_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown extra"):
        build_model(small_spec(name, extra={"no_such_option": 1}))


@pytest.mark.parametrize("name", ["pspnet", "maresunet"])
def test_unknown_encoder_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="training.encoder"):
        build_model(small_spec(name, encoder="resnet_does_not_exist"))


def test_count_parameters_counts_trainable_only_by_default() -> None:
    model = build_model(small_spec("linknet"))
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    encoder = sum(p.numel() for p in model.encoder.parameters())
    assert count_parameters(model) == total - encoder
    assert count_parameters(model, trainable_only=False) == total


@pytest.mark.parametrize("size", [(32, 32), (64, 160), (32, 96), (128, 128)])
def test_reflect_pad_to_keeps_the_input_at_the_returned_offsets(size: tuple[int, int]) -> None:
    x = torch.randn(1, 2, *size)
    padded, (top, left) = reflect_pad_to(x, 128)
    assert padded.shape[-2] >= 128 and padded.shape[-1] >= 128
    assert torch.equal(padded[..., top : top + size[0], left : left + size[1]], x)


def test_registry_covers_the_study() -> None:
    assert set(SMP_ARCHITECTURES) | {"maresunet", "wavemix"} == set(MODEL_NAMES)
