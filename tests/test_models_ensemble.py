"""The checkpoint ensemble: members that agree, the threshold rule, mean and spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glaciermap.errors import InputDataError
from glaciermap.models import ensemble as ensemble_module
from glaciermap.models.checkpoint import Predictor, save_prediction_checkpoint
from glaciermap.models.ensemble import CheckpointEnsemble, mean_and_spread
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

SPEC = ModelSpec("fpn", HParams(0.2, "sigmoid", "mean"), encoder="resnet18")
NORMALIZATION = {"mode": "dataset", "mean": [0.3] * 4, "std": [0.25] * 4}


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("members")
    paths = []
    for seed, threshold in ((1, 0.5), (2, 0.5), (3, 0.4)):
        torch.manual_seed(seed)
        path = folder / f"seed{seed}.pt"
        save_prediction_checkpoint(path, build_model(SPEC), SPEC, NORMALIZATION, 32, threshold)
        paths.append(path)
    return paths


def test_mean_and_spread_over_members():
    probabilities = np.array([[[0.2, 0.9]], [[0.4, 0.9]], [[0.6, 0.3]]], dtype=np.float32)
    mean, spread = mean_and_spread(probabilities)
    assert mean.dtype == spread.dtype == np.float32
    np.testing.assert_allclose(mean, [[0.4, 0.7]], atol=1e-6)
    np.testing.assert_allclose(spread, [[np.sqrt(0.08 / 3), np.sqrt(0.24 / 3)]], atol=1e-6)
    one, zero = mean_and_spread(probabilities[:1])
    assert np.array_equal(one, probabilities[0]) and not zero.any()


def test_probability_is_the_members_mean_and_the_mask_uses_the_threshold(members):
    ensemble = CheckpointEnsemble(members[:2], "cpu")
    assert ensemble.threshold == 0.5 and ensemble.model_names == "fpn"
    bands = np.random.default_rng(0).random((4, 40, 40), dtype=np.float32)
    bands[:, :3, :3] = np.nan
    x = torch.from_numpy(np.nan_to_num(bands))[None]
    each = [member.predict_proba(x)[0].numpy() for member in ensemble.members]
    probability = ensemble.probability(bands)
    np.testing.assert_allclose(probability, (each[0] + each[1]) / 2, atol=1e-6)
    assert not np.allclose(each[0], each[1])  # two members, two maps

    class Image:
        pass

    image = Image()
    image.bands = bands
    assert np.array_equal(ensemble(image), probability >= 0.5)


def test_members_must_agree_on_threshold_unless_one_is_given(members):
    with pytest.raises(InputDataError, match=r"seed3\.pt store different thresholds"):
        CheckpointEnsemble(members, "cpu")
    assert CheckpointEnsemble(members, "cpu", threshold=0.3).threshold == 0.3
    with pytest.raises(InputDataError, match="no checkpoint given"):
        CheckpointEnsemble([], "cpu")


def test_members_must_share_one_band_layout(members, monkeypatch):
    def load(path, device) -> Predictor:
        predictor = original(path, device)
        if path == members[1]:
            predictor.bands = ["green", "blue", "red", "nir"]
        return predictor

    original = ensemble_module.load_predictor
    monkeypatch.setattr(ensemble_module, "load_predictor", load)
    with pytest.raises(InputDataError, match=r"seed2\.pt: band layout .* differs from"):
        CheckpointEnsemble(members[:2], "cpu")
