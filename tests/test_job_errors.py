"""Errors where the user looks: a bad input stops the job with one line that names the
file, on the terminal and in the rule's log file (the one Snakemake points to), with no
traceback; GLACIERMAP_DEBUG=1 brings the traceback back.

One workflow (tests/configs/tiny.yaml with pinned winners: one training run) is
prepared once; each test then breaks one input of one stage and asks for that
stage's output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN = "pspnet/dropout0.4-softmax-mean/oct2000/noaug/seed1"

pytestmark = pytest.mark.slow


def tiny_pinned() -> dict:
    config = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    config["model_selection"]["winner"] = "pspnet"
    config["hparam_grid"]["winner"] = config["model_selection"]["hparams"]
    config["augmentation"]["winner"] = "noaug"
    config["final"]["train_on"] = ["all"]
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory, snakemake) -> Path:
    """A finished tiny workflow (Table 3, maps, one training run)."""
    work = tmp_path_factory.mktemp("errors")
    snakemake(work, "results/table3.csv", config=tiny_pinned())
    return work


@pytest.fixture
def work(finished, tmp_path) -> Path:
    """A copy of the finished workflow that a test may break."""
    copy = tmp_path / "work"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def garble(path: Path) -> None:
    path.write_bytes(b"this is not what the file should hold\n")


def assert_one_line_error(run, log: Path, message: str) -> None:
    assert run.returncode != 0
    logged = log.read_text()
    for where, text in (("terminal", run.output), ("log", logged)):
        lines = [line for line in text.splitlines() if message in line]
        assert len(lines) == 1, f"{where}: {lines or text[-2000:]}"
        assert "ERROR" in lines[0], where
        assert "Traceback" not in text, where


def test_prepare_a_truncated_scene(work, snakemake):
    scene = work / "scene.tif"
    shutil.copy(ROOT / "data/everest/LE71400412000304SGS00_RGB.tif", scene)
    scene.write_bytes(scene.read_bytes()[: scene.stat().st_size // 2])  # header kept
    config = tiny_pinned()
    config["data"]["scenes"]["oct2000"]["file"] = "scene.tif"
    run = snakemake(work, "results/scenes/oct2000.tif", config=config, check=False)
    assert_one_line_error(run, work / "logs/prepare/scene_oct2000.log", "may be truncated")
    assert not (work / "results/scenes/oct2000.tif").exists()  # nothing half-written


def test_train_on_an_unreadable_tile_file(work, snakemake):
    garble(work / "results/tiles/oct2000/train.npz")
    run = snakemake(
        work, f"results/runs/{RUN}/metrics.json", "--forcerun", "train", config=tiny_pinned(),
        check=False,
    )  # fmt: skip
    assert_one_line_error(
        run, work / f"logs/train/{RUN}.log", "cannot read tile file results/tiles/oct2000"
    )


def test_map_with_a_broken_checkpoint(work, snakemake):
    garble(work / f"results/runs/{RUN}/best.pt")
    target = f"results/maps/{RUN}/oct2000/mask.tif"
    run = snakemake(work, target, "--forcerun", "maps_predict", config=tiny_pinned(), check=False)
    assert_one_line_error(
        run, work / f"logs/maps/{RUN}/oct2000/predict.log", "not a readable torch checkpoint"
    )


def test_evaluate_a_mask_on_another_grid(work, snakemake, geotiff):
    geotiff(work / f"results/maps/{RUN}/oct2000/mask.tif", np.zeros((10, 10), np.uint8),
            nodata=255)  # fmt: skip
    run = snakemake(
        work, f"results/eval/{RUN}/oct2000.json", "--forcerun", "evaluate",
        config=tiny_pinned(), check=False,
    )  # fmt: skip
    assert_one_line_error(run, work / f"logs/evaluate/{RUN}/oct2000.log", "is not on the grid of")


def test_table3_with_a_broken_evaluation(work, snakemake):
    garble(work / f"results/eval/{RUN}/oct2000.json")
    run = snakemake(
        work, "results/table3.csv", "--forcerun", "table3", config=tiny_pinned(), check=False
    )
    assert_one_line_error(run, work / "logs/report/table3.log", "cannot read evaluation")


def test_debug_flag_brings_the_traceback_back(work, snakemake):
    garble(work / f"results/eval/{RUN}/oct2000.json")
    run = snakemake(
        work, "results/table3.csv", "--forcerun", "table3", config=tiny_pinned(),
        env={"GLACIERMAP_DEBUG": "1"}, check=False,
    )  # fmt: skip
    assert run.returncode != 0 and "Traceback" in run.output
