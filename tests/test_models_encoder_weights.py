"""Encoder weights from a local file: strict loading, first convolution adapted."""

from __future__ import annotations

from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from glaciermap.errors import ConfigError, InputDataError
from glaciermap.models.encoder_weights import adapt_first_conv_weight
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

torch.set_num_threads(1)


def spec(name: str, weights: Path | None, in_channels: int = 4) -> ModelSpec:
    return ModelSpec(
        name,
        HParams(0.2, "sigmoid", "mean"),
        encoder="resnet18",
        in_channels=in_channels,
        encoder_weights=str(weights) if weights else None,
    )


@pytest.fixture(scope="module")
def rgb_encoder_state() -> dict[str, torch.Tensor]:
    """An RGB resnet18 encoder's weights, as an ImageNet file would hold them, plus fc."""
    torch.manual_seed(3)
    state = smp.encoders.get_encoder("resnet18", in_channels=3, weights=None).state_dict()
    state["fc.weight"] = torch.randn(10, 512)  # a classifier the encoder lacks: ignored
    return state


@pytest.mark.parametrize("name", ["fpn", "maresunet"])
def test_weights_load_and_the_first_conv_is_adapted_to_four_bands(
    name: str, rgb_encoder_state: dict, tmp_path: Path
) -> None:
    file = tmp_path / "rgb.pt"
    torch.save(rgb_encoder_state, file)
    encoder = build_model(spec(name, file)).encoder.state_dict()
    for key, value in encoder.items():
        if key != "conv1.weight" and value.is_floating_point():
            assert torch.equal(value, rgb_encoder_state[key]), key
    rgb = rgb_encoder_state["conv1.weight"]
    assert encoder["conv1.weight"].shape == (64, 4, 7, 7)
    # smp's rule: band i reuses RGB kernel i % 3, all scaled by 3/4
    torch.testing.assert_close(encoder["conv1.weight"][:, 3], rgb[:, 0] * 0.75)
    torch.testing.assert_close(encoder["conv1.weight"][:, 1], rgb[:, 1] * 0.75)


def test_whole_model_prefixes_are_accepted(rgb_encoder_state: dict, tmp_path: Path) -> None:
    file = tmp_path / "prefixed.pt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in rgb_encoder_state.items()}}, file)
    encoder = build_model(spec("linknet", file)).encoder.state_dict()
    assert torch.equal(encoder["layer4.1.conv2.weight"], rgb_encoder_state["layer4.1.conv2.weight"])


def test_adapt_first_conv_weight_for_one_and_many_channels() -> None:
    rgb = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_first_conv_weight(rgb, 1), rgb.sum(1, keepdim=True))
    six = adapt_first_conv_weight(rgb, 6)
    torch.testing.assert_close(six[:, 4], rgb[:, 1] * 0.5)
    # the response to a constant input is kept
    torch.testing.assert_close(six.sum(1), rgb.sum(1))


def test_missing_weights_are_refused(rgb_encoder_state: dict, tmp_path: Path) -> None:
    file = tmp_path / "partial.pt"
    torch.save({k: v for k, v in rgb_encoder_state.items() if not k.startswith("layer4")}, file)
    with pytest.raises(InputDataError, match="partial.pt.*missing"):
        build_model(spec("fpn", file))


def test_a_wrong_shape_beyond_the_first_conv_is_refused(
    rgb_encoder_state: dict, tmp_path: Path
) -> None:
    file = tmp_path / "wrong.pt"
    state = dict(rgb_encoder_state)
    state["layer1.0.conv1.weight"] = torch.randn(64, 32, 3, 3)
    torch.save(state, file)
    with pytest.raises(InputDataError, match="wrong.pt.*layer1.0.conv1.weight"):
        build_model(spec("fpn", file))


def test_unreadable_or_absent_files_are_input_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputDataError, match="garbage.pt"):
        build_model(spec("fpn", garbage))
    with pytest.raises(InputDataError, match="absent.pt"):
        build_model(spec("fpn", tmp_path / "absent.pt"))


def test_wavemix_has_no_encoder_to_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="encoder_weights"):
        build_model(spec("wavemix", tmp_path / "any.pt"))
