"""Each dimension of the study's grid (dropout, activation, pooling) changes the trained weights.

Runs a real architecture (DeepLabV3+, the study's winner, with a resnet18
encoder) for one short epoch from the same seed; only one grid value differs
between two runs. The encoder is shared by every variant, so its weights are
compared: any difference comes from the training signal, not from the shape of
a head.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training_run import settings, write_date

from glaciermap.runs import HParams
from glaciermap.training.run import train_run

BASE = HParams(0.2, "sigmoid", "mean")
VARIANTS = {
    "dropout": HParams(0.5, "sigmoid", "mean"),
    "activation": HParams(0.2, "softmax", "mean"),
    "pooling": HParams(0.2, "sigmoid", "max"),
}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("grid")
    tiles = write_date(folder / "tiles", seed=3, n_train=8, n_val=2)
    trained = {}
    for name, hparams in {"base": BASE, "again": BASE, **VARIANTS}.items():
        run_settings = settings(
            model="deeplabv3plus", encoder="resnet18", hparams=hparams, epochs=1, aug="noaug"
        )
        out: Path = folder / name
        train_run(run_settings, [tiles["train"]], [tiles["val"]], [tiles["stats"]], out)
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["model"]
        trained[name] = {
            k: v for k, v in state.items() if ".encoder." in k and v.is_floating_point()
        }
    return trained


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_same_hparams_give_the_same_weights(encoders):
    assert _max_difference(encoders["base"], encoders["again"]) == 0


@pytest.mark.parametrize("dimension", sorted(VARIANTS))
def test_each_grid_dimension_changes_the_trained_encoder(encoders, dimension):
    assert _max_difference(encoders["base"], encoders[dimension]) > 1e-6
