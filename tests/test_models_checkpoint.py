"""Prediction checkpoints: round trip, the Predictor's normalisation and padding, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.errors import InputDataError
from glaciermap.models.checkpoint import (
    CHECKPOINT_FORMAT,
    Predictor,
    load_checkpoint,
    load_predictor,
    save_prediction_checkpoint,
)
from glaciermap.models.outputs import glacier_probability
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

torch.set_num_threads(1)

NORMALIZATION = {"mean": [0.1, 0.2, 0.3, 0.4], "std": [0.05, 0.1, 0.15, 0.2]}


def trained_model(spec: ModelSpec) -> torch.nn.Module:
    """A model whose batch-norm statistics are no longer the initial ones."""
    torch.manual_seed(0)
    model = build_model(spec)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    masks, _ = model.train()(torch.randn(4, 4, 64, 64))
    masks.mean().backward()
    optimiser.step()
    return model.eval()


@pytest.fixture(params=["sigmoid", "softmax"])
def saved(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Path, torch.nn.Module, ModelSpec]:
    spec = ModelSpec("wavemix", HParams(0.3, request.param, "max"), extra={"dim": 16, "depth": 2})
    model = trained_model(spec)
    path = tmp_path / "run" / "best.pt"
    save_prediction_checkpoint(
        path,
        model,
        spec,
        NORMALIZATION,
        tile_size=64,
        threshold=0.4,
        epoch=3,
        metrics={"val_f1": np.float32(0.75)},
    )
    return path, model, spec


def test_round_trip_gives_identical_probabilities(saved: tuple) -> None:
    path, model, spec = saved
    predictor = load_predictor(path)
    x = torch.rand(2, 4, 64, 96)
    mean = torch.tensor(NORMALIZATION["mean"]).view(1, 4, 1, 1)
    std = torch.tensor(NORMALIZATION["std"]).view(1, 4, 1, 1)
    with torch.no_grad():
        expected = glacier_probability(model((x - mean) / std)[0], spec.hparams.activation)
    assert torch.equal(predictor.predict_proba(x), expected)
    assert predictor.spec == spec
    assert predictor.bands == ["blue", "green", "red", "nir"]
    assert predictor.normalization == {"mode": "dataset", **NORMALIZATION}
    assert (predictor.tile_size, predictor.threshold, predictor.epoch) == (64, 0.4, 3)
    assert predictor.metrics["val_f1"] == pytest.approx(0.75)
    assert not predictor.model.training


def test_any_size_is_padded_and_cropped_back(saved: tuple) -> None:
    path, _, _ = saved
    predictor = load_predictor(path)
    x = torch.rand(1, 4, 50, 70)
    probability = predictor.predict_proba(x)
    assert probability.shape == (1, 50, 70)
    assert ((probability >= 0) & (probability <= 1)).all()
    assert torch.equal(predictor.predict_mask(x), probability >= 0.4)


def test_nodata_is_treated_like_the_tiles_zeros(saved: tuple) -> None:
    predictor = load_predictor(saved[0])
    x = torch.rand(1, 4, 64, 64)
    x[:, :, :10] = float("nan")
    zeros = x.nan_to_num(0.0)
    assert torch.equal(predictor.predict_proba(x), predictor.predict_proba(zeros))


def test_checkpoint_is_the_documented_dict(saved: tuple) -> None:
    checkpoint = load_checkpoint(saved[0])
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert ModelSpec.from_dict(checkpoint["spec"]) == saved[2]
    assert all(t.device.type == "cpu" for t in checkpoint["state_dict"].values())
    assert not any(p.name.startswith(".") for p in saved[0].parent.iterdir())  # no temp left


def rewrite(path: Path, **changes) -> Path:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint.update(changes)
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else/9"}, "format"),
        ({"bands": ["red", "green", "blue", "nir"]}, "band layout"),
        ({"normalization": {"mean": [0.0], "std": [1.0]}}, "normalization"),
        ({"spec": {"name": "nonet"}}, "spec"),
    ],
)
def test_bad_checkpoints_are_input_errors_naming_the_file(
    saved: tuple, changes: dict, message: str
) -> None:
    path = rewrite(saved[0], **changes)
    with pytest.raises(InputDataError, match=f"best.pt.*{message}"):
        load_predictor(path)


def test_weights_of_another_model_are_refused(saved: tuple) -> None:
    path, _, spec = saved
    other = ModelSpec("wavemix", spec.hparams, extra={"dim": 32, "depth": 2}).to_dict()
    with pytest.raises(InputDataError, match="best.pt.*weights do not fit"):
        load_predictor(rewrite(path, spec=other))


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(InputDataError, match="foreign.pt"):
        load_predictor(foreign)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(InputDataError, match="text.pt"):
        load_predictor(text)
    with pytest.raises(InputDataError, match="absent.pt"):
        load_predictor(tmp_path / "absent.pt")


def test_predictor_checks_its_input() -> None:
    spec = ModelSpec("wavemix", HParams(0.3, "sigmoid", "max"), extra={"dim": 16, "depth": 1})
    predictor = Predictor(build_model(spec), spec, NORMALIZATION, tile_size=64, threshold=0.5)
    with pytest.raises(ValueError, match="expected"):
        predictor.predict_proba(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("name", ["fpn", "maresunet"])
def test_round_trip_of_encoder_models(name: str, tmp_path: Path) -> None:
    spec = ModelSpec(name, HParams(0.3, "softmax", "mean"), encoder="resnet18")
    model = trained_model(spec)
    save_prediction_checkpoint(tmp_path / "m.pt", model, spec, NORMALIZATION, 64, 0.5)
    x = torch.rand(1, 4, 64, 64)
    expected = Predictor(model, spec, NORMALIZATION, 64, 0.5).predict_proba(x)
    assert torch.equal(load_predictor(tmp_path / "m.pt").predict_proba(x), expected)


def test_a_failed_save_leaves_the_previous_checkpoint(
    saved: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, model, spec = saved
    before = path.read_bytes()

    def crash(obj: object, file: Path) -> None:
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_prediction_checkpoint(path, model, spec, NORMALIZATION, 64, 0.5)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]
