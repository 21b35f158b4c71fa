"""Dry run of the study config through `--profile slurm`: GPU resources and the
packing of training runs, as a user sees them before submitting anything."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "cluster"))
import count_slurm_jobs as counting  # noqa: E402


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory, study) -> tuple[dict, str]:
    config = study.config(pinned=False)
    workdir = tmp_path_factory.mktemp("study")
    return config, counting.slurm_dry_run(workdir, config, study.targets(pinned=False))


def _job_blocks(output: str, rule: str) -> list[str]:
    """The printed block (input .. resources) of every job of ``rule``."""
    return re.findall(rf"^\s*rule {rule}:\n((?:\s{{8}}.*\n)+)", output, re.MULTILINE)


def test_training_jobs_ask_for_a_gpu_on_the_gpu_partition(first_stage):
    _, output = first_stage
    blocks = _job_blocks(output, "train")
    assert blocks
    for block in blocks:
        resources = re.search(r"resources: (.*)", block)[1]
        assert "slurm_partition=gpu" in resources and "gpu=1" in resources, resources
        assert "cpus_per_task=8" in resources, resources
    for block in _job_blocks(output, "prepare_tiles"):
        assert "slurm_partition=cpu" in block and "gpu=" not in block


def test_seeds_of_one_configuration_share_a_slurm_job(first_stage):
    config, output = first_stage
    groups = counting.group_members(output)
    training = {name: rules for name, rules in groups.items() if name.startswith("training-")}
    # model selection: one packed job per model, holding that model's seeds
    assert len(training) == len(config["model_selection"]["models"])
    for name, rules in training.items():
        assert rules == ["train"] * len(config["seeds"]), name
    assert groups["preparation"], "data preparation is not one job"
    counts = counting.count_jobs(output)
    assert counts["training_runs"] == len(config["seeds"]) * len(training)
    assert counts["packed"] < counts["unpacked"]
