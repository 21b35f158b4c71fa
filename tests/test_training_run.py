"""One training run end to end, on tiny generated tiles and a tiny model (seconds on a CPU)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import backend_context, plugin_data_pb2
from torch import nn

from glaciermap.data.normalization import band_stats
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError
from glaciermap.models.aux_head import build_aux_head
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams
from glaciermap.training.interruption import RunInterrupted
from glaciermap.training.run import batch_indices, train_run
from glaciermap.training.schedule import learning_rate
from glaciermap.training.settings import RunSettings
from glaciermap.utils import progress

TILE = 32
EPOCHS = 3


class TinyNet(nn.Module):
    """Two convolutions with the project's forward contract and the real auxiliary head."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(spec.in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.head = nn.Conv2d(8, spec.hparams.out_channels, 1)
        self.aux = build_aux_head(spec, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.body(x)
        aux = self.aux(features) if self.aux is not None else None
        return self.head(features), aux


def write_date(folder: Path, seed: int, n_train: int = 8, n_val: int = 4) -> dict[str, Path]:
    """Tiles whose glacier pixels are bright in the visible bands and dark in NIR."""
    rng = np.random.default_rng(seed)
    paths = {}
    for split, n in (("train", n_train), ("val", n_val)):
        yy, xx = np.mgrid[0:TILE, 0:TILE]
        masks = np.stack(
            [
                ((xx - rng.uniform(0, TILE)) ** 2 + (yy - rng.uniform(0, TILE)) ** 2 < 150)
                for _ in range(n)
            ]
        ).astype(np.uint8)
        images = rng.normal(0.2, 0.05, (n, 4, TILE, TILE)).astype(np.float32)
        images[:, :3] += 0.5 * masks[:, None]
        images[:, 3] -= 0.1 * masks
        windows = np.array([[0, i * TILE, TILE, TILE] for i in range(n)])
        path = folder / split / f"{split}.npz"
        ranges = np.percentile(images, (2, 98), axis=(0, 2, 3)).T  # one scene's range
        transform = np.array([10, 0, 0, 0, -10, 0.0])
        TileSet(images, masks, windows, "EPSG:32645", transform, ranges).save(path)
        paths[split] = path
        if split == "train":
            stats = band_stats(images, np.ones(masks.shape, bool))
            paths["stats"] = folder / "stats.json"
            paths["stats"].write_text(json.dumps(stats))
    return paths


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_date(tmp_path_factory.mktemp("tiles"), seed=0)


def settings(**changes: object) -> RunSettings:
    values = dict(
        model="fpn",
        hparams=HParams(0.4, "softmax", "mean"),
        dates=("july",),
        aug="aug-online",
        seed=7,
        epochs=EPOCHS,
        batch_size=4,
        learning_rate=0.01,
        optimizer="adam",
        weight_decay=0.0,
        lr_schedule="constant",
        warmup_epochs=0.0,
        normalization="dataset",
        loss="bce+dice",
        selection_epochs=2,
        image_every=2,
        device="cpu",
        threads=1,
    )
    values.update(changes)
    return RunSettings(**values)


def run(run_settings: RunSettings, tiles: dict[str, Path], out: Path, build=TinyNet) -> dict:
    return train_run(
        run_settings, [tiles["train"]], [tiles["val"]], [tiles["stats"]], out, build=build
    )


def comparable(metrics: dict) -> dict:
    """Metrics without the wall-clock times, which legitimately differ between runs."""
    epochs = [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]]
    return {**metrics, "epochs": epochs, "train_seconds": None}


def weights(path: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def test_run_folder_holds_checkpoints_metrics_and_events(tiles, tmp_path):
    metrics = run(settings(), tiles, tmp_path)

    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, EPOCHS + 1))
    expected = {"train_loss", "val_loss", "train_f1", "val_f1", "val_iou", "val_precision"}
    assert expected <= set(metrics["epochs"][0])
    val_f1 = [e["val_f1"] for e in metrics["epochs"]]
    assert metrics["selection_score"] == pytest.approx(sum(val_f1[-2:]) / 2)
    assert metrics["best_val_f1"] == max(val_f1)
    assert metrics["epochs"][metrics["best_epoch"] - 1]["val_f1"] == max(val_f1)
    assert metrics["n_train_tiles"] == 8 and metrics["n_val_tiles"] == 4
    assert metrics["run"]["hparams"] == "dropout0.4-softmax-mean"
    best = torch.load(tmp_path / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    assert len(best["normalization"]["mean"]) == 4
    assert (tmp_path / "last.pt").is_file()

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    val_curve = [(s.step, s.value) for s in events.Scalars("f1/val")]
    assert val_curve == [(i + 1, pytest.approx(f, abs=1e-6)) for i, f in enumerate(val_f1)]
    assert "loss/train" in events.Tags()["scalars"]
    assert [i.step for i in events.Images("val/rgb_truth_probability_prediction")] == [2, 3]
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["loss"].string_value == "bce+dice"
    assert hparams["learning_rate"].number_value == pytest.approx(0.01)
    # The run's identity is recorded, to be the columns that differ between runs.
    assert {"model", "hparams", "dates", "aug", "seed"} <= set(hparams)
    assert hparams["hparams"].string_value == "dropout0.4-softmax-mean"
    # No experiment summary (TensorBoard infers it from all runs, marking what differs)
    # and no single-point hparam/* scalars: the metric columns are the runs' curves.
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert not [tag for tag in events.Tags()["scalars"] if tag.startswith("hparam/")]
    selection = events.Scalars("f1/val_selection")
    assert [s.step for s in selection] == list(range(1, EPOCHS + 1))
    assert selection[-1].value == pytest.approx(metrics["selection_score"], abs=1e-6)
    assert events.Scalars("f1/val_best")[-1].value == pytest.approx(metrics["best_val_f1"])


def test_hparams_tab_shows_the_run_identity_first(tiles, tmp_path):
    """TensorBoard's HParams tab ticks the first five settings after sorting those that
    differ between runs first (then by name): they are the runs' identity."""
    runs = {
        "a": settings(epochs=1, model="fpn", dates=("july",), aug="noaug", seed=1),
        "b": settings(
            epochs=1,
            model="pspnet",
            hparams=HParams(0.2, "sigmoid", "max"),
            dates=("august",),  # a label only: the same tile files
            aug="aug-online",
            seed=2,
        ),
    }
    contents = {}
    for name, run_settings in runs.items():
        run(run_settings, tiles, tmp_path / name)
        events = EventAccumulator(str(tmp_path / name))
        events.Reload()
        contents[name] = events.PluginTagToContent("hparams")
    infos = backend_context.Context(None)._compute_hparam_infos(contents)
    shown = sorted(infos, key=lambda info: (not info.differs, info.name))[:5]
    assert [(info.name, info.differs) for info in shown] == [
        (name, True) for name in ("aug", "dates", "hparams", "model", "seed")
    ]
    assert {"epochs", "learning_rate", "loss", "batch_size"} <= {info.name for info in infos}


def test_learning_rate_curve_follows_the_schedule(tiles, tmp_path, monkeypatch, caplog):
    """train/learning_rate per epoch: the rate of each epoch's first step, warm-up then
    cosine decay (glaciermap.training.schedule)."""
    recipe = settings(lr_schedule="warmup_cosine", warmup_epochs=1.0, final_lr_fraction=0.1)
    # Progress as log lines, one per batch at interval 0 (no end line: the epoch line follows).
    monkeypatch.setattr(progress, "_settings", progress.ProgressSettings("log", 0.0))
    caplog.set_level(logging.INFO, logger="glaciermap.progress")
    metrics = run(recipe, tiles, tmp_path)
    lines = [
        r.getMessage().split(" [")[0] for r in caplog.records if r.name == "glaciermap.progress"
    ]
    assert lines == [
        f"epoch {e}/{EPOCHS}: {p} {n}/2 batch"
        for e in range(1, EPOCHS + 1)
        for p, n in ((" 50%", 1), ("100%", 2))
    ]
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    curve = [(s.step, s.value) for s in events.Scalars("train/learning_rate")]
    steps = len(batch_indices(torch.arange(metrics["n_train_samples"]), recipe.batch_size))
    expected = [learning_rate(recipe, (e - 1) * steps, steps) for e in range(1, EPOCHS + 1)]
    assert curve == [(e, pytest.approx(r, rel=1e-6)) for e, r in enumerate(expected, start=1)]
    # warm-up from learning_rate / 25 to the peak after one epoch, then decaying
    assert curve[0][1] == pytest.approx(0.01 / 25, rel=1e-6)
    assert curve[1][1] == pytest.approx(0.01, rel=1e-6)
    assert 0.001 < curve[2][1] < 0.01


def test_same_seed_gives_identical_metrics(tiles, tmp_path):
    first = run(settings(), tiles, tmp_path / "a")
    second = run(settings(), tiles, tmp_path / "b")
    other_seed = run(settings(seed=8), tiles, tmp_path / "c")
    assert comparable(first) == comparable(second)
    assert comparable(first)["epochs"] != comparable(other_seed)["epochs"]


class TermAtForward(TinyNet):
    """Sends SIGTERM to its own process during the 3rd training batch (epoch 2 of 2 batches)."""

    calls = 0

    def forward(self, x):
        if self.training:
            TermAtForward.calls += 1
            if TermAtForward.calls == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(x)


def test_sigterm_saves_mid_epoch_and_resume_matches(tiles, tmp_path):
    reference = run(settings(), tiles, tmp_path / "ref")
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stopped:
        run(settings(), tiles, out, build=TermAtForward)
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert state["epochs_done"] == 1 and state["progress"]["next_batch"] == 1
    assert not (out / "metrics.json").exists()

    resumed = run(settings(), tiles, out)
    assert comparable(resumed) == comparable(reference)
    for key, value in weights(tmp_path / "ref" / "last.pt", "model").items():
        assert torch.equal(value, weights(out / "last.pt", "model")[key]), key


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_training_run import TinyNet, settings
from glaciermap.training.run import train_run

class KillAtForward(TinyNet):
    calls = 0
    def forward(self, x):
        if self.training:
            KillAtForward.calls += 1
            if KillAtForward.calls == {kill_at}:  # 5: first batch of epoch 3
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)

train_run(settings(checkpoint_every={every}), [{train!r}], [{val!r}], [{stats!r}], {out!r},
          build=KillAtForward)
"""


@pytest.mark.parametrize(
    ("every", "kill_at", "saved_epochs"),
    [(1, 5, 2), (2, 5, 2), (2, 3, None)],  # checkpoint_every 2: epoch 1 is not saved
)
def test_sigkill_then_restart_matches_uninterrupted_run(
    tiles, tmp_path, every, kill_at, saved_epochs
):
    reference = run(settings(), tiles, tmp_path / "ref")
    out = tmp_path / "run"
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).parent),
        train=str(tiles["train"]),
        val=str(tiles["val"]),
        stats=str(tiles["stats"]),
        out=str(out),
        every=every,
        kill_at=kill_at,
    )
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False)
    assert killed.returncode == -signal.SIGKILL
    if saved_epochs is None:
        assert not (out / "last.pt").exists()
    else:
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        assert state["epochs_done"] == saved_epochs and state["progress"] is None

    resumed = run(settings(checkpoint_every=every), tiles, out)
    assert comparable(resumed) == comparable(reference) | {"run": comparable(resumed)["run"]}


def test_changed_settings_start_again(tiles, tmp_path):
    run(settings(epochs=1), tiles, tmp_path)
    metrics = run(settings(epochs=2, learning_rate=0.02), tiles, tmp_path)
    assert len(metrics["epochs"]) == 2 and not math.isnan(metrics["selection_score"])


def test_changed_tiles_start_again(tmp_path, caplog):
    """Same settings, new tile contents: the finished last.pt must not be handed back."""
    tiles = write_date(tmp_path / "tiles", seed=0)
    first = run(settings(epochs=1), tiles, tmp_path / "run")
    write_date(tmp_path / "tiles", seed=1)  # same paths and sizes, other content
    again = run(settings(epochs=1), tiles, tmp_path / "run")
    assert comparable(again)["epochs"] != comparable(first)["epochs"]
    assert "other input tiles" in caplog.text


class _Payload:
    """A pickle that creates a file when unpickled: what a crafted ``last.pt`` could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_resume_state_is_refused_without_running_its_code(tiles, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format": "glaciermap-resume/2", "model": _Payload(marker)}, out / "last.pt")
    with pytest.raises(InputDataError, match=r"refusing the resume state .*last\.pt.*GLOBAL"):
        run(settings(epochs=1), tiles, out)
    assert not marker.exists()
    assert not (out / "best.pt").exists() and not (out / "metrics.json").exists()


def test_ema_validates_and_checkpoints_the_averaged_weights(tiles, tmp_path):
    """training.ema_decay: the raw weights train as without it, validation and best.pt
    use their moving average, and last.pt carries both so that a resume goes on."""
    raw = run(settings(epochs=1), tiles, tmp_path / "raw")
    ema = run(settings(epochs=1, ema_decay=0.5), tiles, tmp_path / "ema")
    train_curve = [(e["train_loss"], e["train_f1"]) for e in raw["epochs"]]
    assert [(e["train_loss"], e["train_f1"]) for e in ema["epochs"]] == train_curve
    assert [e["val_loss"] for e in ema["epochs"]] != [e["val_loss"] for e in raw["epochs"]]
    last = weights(tmp_path / "ema" / "last.pt", "model")
    averaged = {k.removeprefix("ema.module."): v for k, v in last.items() if "ema.module." in k}
    trained = {k.removeprefix("model."): v for k, v in last.items() if k.startswith("model.")}
    assert averaged.keys() == trained.keys()
    assert any(not torch.equal(averaged[k], trained[k]) for k in trained)
    best = weights(tmp_path / "ema" / "best.pt", "state_dict")  # one epoch: its average
    assert best.keys() == averaged.keys()
    assert all(torch.equal(best[k], averaged[k]) for k in best)
    # A finished run with EMA resumes to the same metrics (nothing left to train).
    again = run(settings(epochs=1, ema_decay=0.5), tiles, tmp_path / "ema")
    assert comparable(again) == comparable(ema)


def test_too_few_validation_pixels_are_refused_with_the_numbers(tiles, tmp_path):
    message = r"4096 labelled pixels in 4 tiles.*min_val_pixels = 5000"
    with pytest.raises(InputDataError, match=message):
        run(settings(min_val_pixels=5000), tiles, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
