"""A short training run on the embedded Everest tiles, read back with TensorBoard's reader.

The tiles come from the preparation rules (Snakemake, tests/configs/tiny.yaml:
32 px tiles); the run is the real ``glaciermap train`` command with PSPNet and
a resnet18 encoder for two epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from glaciermap.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
RUN = "pspnet/dropout0.4-softmax-mean/oct2000/aug-concat/seed1"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, snakemake) -> Path:
    work = tmp_path_factory.mktemp("everest")
    targets = [f"results/tiles/oct2000/{name}" for name in ("train.npz", "val.npz", "stats.json")]
    snakemake(work, *targets, config=TINY)
    args = ["train", "--config", str(TINY), "--model", "pspnet", "--hparams"]
    args += ["dropout0.4-softmax-mean", "--dates", "oct2000", "--aug", "aug-concat", "--seed", "1"]
    args += ["--tiles", str(work / "results/tiles"), "--runs", str(work / "runs"), "--epochs", "2"]
    assert main(args) == 0
    return work / "runs" / RUN


def test_run_folder_has_checkpoints_and_metrics(run_folder):
    metrics = json.loads((run_folder / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["n_train_samples"] == 2 * metrics["n_train_tiles"] > 0
    assert all(0 <= e["val_f1"] <= 1 for e in metrics["epochs"])
    best = torch.load(run_folder / "best.pt", map_location="cpu", weights_only=True)
    assert best["format"] == "glaciermap-checkpoint/1" and best["tile_size"] == 32
    last = torch.load(run_folder / "last.pt", map_location="cpu", weights_only=True)
    assert last["epochs_done"] == 2


def test_tensorboard_reads_back_scalars_and_hparams(run_folder):
    metrics = json.loads((run_folder / "metrics.json").read_text())
    events = EventAccumulator(str(run_folder))
    events.Reload()
    for tag, key in (("loss/train", "train_loss"), ("f1/val", "val_f1")):
        logged = [(s.step, s.value) for s in events.Scalars(tag)]
        expected = [(e["epoch"], pytest.approx(e[key], rel=1e-5)) for e in metrics["epochs"]]
        assert logged == expected
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["model"].string_value == "pspnet"
    assert start.session_start_info.hparams["aug"].string_value == "aug-concat"
    # The HParams tab's metric columns are the curves' last values.
    score = events.Scalars("f1/val_selection")[-1].value
    assert score == pytest.approx(metrics["selection_score"], rel=1e-5)
    assert events.Images("val/rgb_truth_probability_prediction")
