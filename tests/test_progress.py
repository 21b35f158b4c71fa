"""Progress of long work: a bar on a terminal, a log line every N seconds elsewhere."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from glaciermap.cli import main
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams
from glaciermap.utils import progress

ROOT = Path(__file__).resolve().parents[1]
GRID = {"crs": "EPSG:32645", "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)}
# 200 x 300 px in blocks of 128 px: 2 block rows x 3 block columns.
SCENE_SHAPE = (200, 300)
BLOCK_SIZE = 128
N_BLOCKS = 6


@pytest.fixture(autouse=True)
def fresh_progress_settings(monkeypatch):
    """Each test configures progress from scratch (the CLI sets it for the process)."""
    monkeypatch.setattr(progress, "_settings", progress.ProgressSettings())
    monkeypatch.delenv(progress.INTERVAL_VARIABLE, raising=False)


@pytest.fixture(scope="module")
def predict_args(tmp_path_factory, geotiff):
    """``glaciermap predict`` arguments for a tiny model on the known scene."""
    folder = tmp_path_factory.mktemp("progress")
    torch.manual_seed(0)
    spec = ModelSpec("pspnet", HParams(0.2, "sigmoid", "mean"), encoder="resnet18")
    checkpoint = folder / "best.pt"
    normalization = {"mean": [0.3] * 4, "std": [0.1] * 4}
    save_prediction_checkpoint(checkpoint, build_model(spec), spec, normalization, 32, 0.5)
    bands = np.random.default_rng(0).uniform(0.05, 0.9, (4, *SCENE_SHAPE)).astype(np.float32)
    scene = geotiff(folder / "scene.tif", bands, **GRID, nodata=np.nan)
    return [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--scene",
        str(scene),
        "--window",
        "64",
        "--margin",
        "16",
        "--block-size",
        str(BLOCK_SIZE),
        "--device",
        "cpu",
    ]


def progress_lines(capsys) -> list[str]:
    """Progress log lines the command wrote to stderr (the command sets up logging)."""
    marker = " INFO glaciermap.progress: "
    return [
        line.split(marker)[1] for line in capsys.readouterr().err.splitlines() if marker in line
    ]


def test_predict_logs_a_line_per_interval_with_the_block_count(predict_args, tmp_path, capsys):
    args = ["--progress-interval", "0", *predict_args, "--out", str(tmp_path / "out")]
    assert main(args) == 0
    lines = progress_lines(capsys)
    # Interval 0: one line per finished block, each with megapixels, rate and time left.
    assert [re.search(r"block (\d+)/(\d+)", line).groups() for line in lines] == [
        (str(i), str(N_BLOCKS)) for i in range(1, N_BLOCKS + 1)
    ]
    assert lines[-1].startswith("predict: 100% 60.0k/60.0k px")  # 200 x 300 px
    assert all(re.search(r"\d+:\d\d<\d+:\d\d, +[\d.]+[kM]?px/s", line) for line in lines)


def test_default_interval_logs_only_the_final_line(predict_args, tmp_path, capsys):
    assert main([*predict_args, "--out", str(tmp_path / "out")]) == 0
    lines = progress_lines(capsys)
    assert len(lines) == 1 and f"block {N_BLOCKS}/{N_BLOCKS}" in lines[0]


def test_quiet_shows_no_progress_and_no_info(predict_args, tmp_path, capsys):
    assert main(["-q", *predict_args, "--out", str(tmp_path / "out")]) == 0
    assert " INFO " not in capsys.readouterr().err


def test_log_lines_are_paced_by_time_not_by_steps(caplog):
    caplog.set_level(logging.INFO, logger="glaciermap.progress")

    def lines() -> list[str]:
        return [r.getMessage().split(" [")[0] for r in caplog.records]

    progress.configure(mode="log", interval=3600)
    with progress.progress(1000, "epoch 1/1", "batch", leave=False) as bar:
        for _ in range(1000):
            bar.update()
    assert lines() == []  # within the interval, and no end line (leave=False)
    progress.configure(interval=0)
    with progress.progress(3, "chips x", "chip") as bar:
        for _ in range(3):
            bar.update()
    assert lines() == ["chips x:  33% 1/3 chip", "chips x:  67% 2/3 chip", "chips x: 100% 3/3 chip"]


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "5")
    assert progress.log_interval() == 5
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "soon")
    with pytest.raises(progress.ConfigError, match=progress.INTERVAL_VARIABLE):
        progress.log_interval()


def test_predict_on_a_terminal_draws_a_bar(predict_args, tmp_path):
    """On a pseudo-terminal the command draws a tqdm bar (carriage returns) with the
    block count, megapixels per second and the time left."""
    leader, follower = pty.openpty()
    # rows, columns (a fresh pseudo-terminal is 0 x 0, where tqdm draws nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "glaciermap", *predict_args, "--out", str(tmp_path / "o")]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, output.decode(errors="replace")[-2000:]
    text = output.decode(errors="replace")
    assert "\r" in text and "█" in text  # a redrawn bar, not log lines
    assert f"block {N_BLOCKS}/{N_BLOCKS}" in text and "predict: 100%" in text
    assert re.search(r"[\d.]+[kM]?px/s", text)
    assert "glaciermap.progress" not in text
