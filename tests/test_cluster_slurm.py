"""The workflow on a real one-node SLURM cluster (tests/cluster/start_slurm.sh).

Runs as root (CI does): installs Debian's SLURM and munge when missing, starts
the daemons, and stops the ones it started, also when a test fails. Skips only
where the daemons cannot be installed. About ten minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "cluster"))
import slurm_harness as h  # noqa: E402

pytestmark = pytest.mark.slurm

SNAKEMAKE_TIMEOUT = 1200
RUN = "pspnet/dropout0.4-softmax-mean/oct2000/noaug/seed1"


@pytest.fixture(scope="module")
def cluster():
    try:
        with h.one_node_cluster():
            yield
    except h.SlurmUnavailable as exc:
        pytest.skip(f"SLURM daemons cannot be installed here: {exc}")


def _training_group_sizes(log: str) -> list[int]:
    """Training runs in each packed training job, from the job listing in the log:
    a group's member jobs are indented under its "Group job training-..." header."""
    sizes: list[int] = []
    counting = False
    for line in log.splitlines():
        if "] Group job " in line:
            counting = "] Group job training" in line
            sizes += [0] if counting else []
        elif counting and line.strip() == "rule train:":
            sizes[-1] += 1
        elif line.startswith(("[", "Job")):  # a job outside groups, or a submission
            counting = False
    return sizes


def test_tiny_workflow_runs_on_slurm(cluster, tmp_path, snakemake):
    config = h.make_workdir(tmp_path)
    try:
        log = snakemake(
            tmp_path, *h.PROFILE_ARGS, config=config, cores=None, timeout=SNAKEMAKE_TIMEOUT
        ).output
    finally:
        h.cancel_jobs_under(tmp_path)

    table3 = tmp_path / "results" / "table3.csv"
    assert table3.is_file() and len(table3.read_text().splitlines()) > 1
    runs = sorted((tmp_path / "results" / "runs").glob("*/*/*/*/seed*/metrics.json"))
    assert runs, "no training run finished"
    for metrics in runs:
        assert json.loads(metrics.read_text())["epochs"], metrics

    # Every job went through SLURM: the ids Snakemake logged are jobs SLURM completed.
    job_ids = h.submitted_job_ids(log)
    assert job_ids, "no SLURM job id in the Snakemake log"
    states = h.completed_job_states(job_ids)
    assert states == {job: "COMPLETED" for job in job_ids}, states
    # The two model-selection runs were packed into one SLURM job.
    assert 2 in _training_group_sizes(log), log[-6000:]


def _kill_training_after_epoch(proc: subprocess.Popen, train_log: Path, epoch: int) -> int:
    """scancel the running training job once ``train_log`` reports ``epoch``; its id."""
    h.wait_for(
        lambda: (
            proc.poll() is not None
            or (train_log.exists() and f"epoch {epoch}/" in train_log.read_text())
        ),
        600,
        f"epoch {epoch} in {train_log}",
    )
    assert proc.poll() is None, "Snakemake ended before the training job could be cancelled"
    job_ids = h.running_job_ids("train")
    assert len(job_ids) == 1, job_ids
    subprocess.run(["scancel", str(job_ids[0])], check=True)
    return job_ids[0]


def test_killed_training_leaves_no_output_and_resumes_on_retry(cluster, tmp_path, dry_run):
    epochs = 20
    config = h.make_workdir(
        tmp_path, {"training": {"epochs": epochs, "selection_epochs": 2, "image_every": epochs}}
    )
    target = f"results/runs/{RUN}/metrics.json"
    run_dir = tmp_path / "results" / "runs" / RUN
    train_log = tmp_path / "logs" / "train" / f"{RUN}.log"

    # 1. Without retries a job cancelled by SLURM fails the run and leaves no
    #    output Snakemake would take as complete; last.pt stays for the next try.
    proc = subprocess.Popen(
        h.snakemake_command(tmp_path, config, "--retries", "0", target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=h.job_environment(),
    )
    try:
        cancelled = _kill_training_after_epoch(proc, train_log, 1)
        log, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT)
    finally:
        h.stop_snakemake(proc, tmp_path)
    assert proc.returncode != 0, log[-4000:]
    assert str(cancelled) in log
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "best.pt").exists()
    assert (run_dir / "last.pt").is_file()
    planned = dry_run(tmp_path, config, *h.PROFILE_ARGS, target).counts
    assert planned.get("train") == 1, planned  # the run is to do again

    # 2. With the profile's retries: cancelled again, resubmitted, resumed.
    proc = subprocess.Popen(
        h.snakemake_command(tmp_path, config, target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=h.job_environment(),
    )
    try:
        # The first attempt of this run continues from epoch 2.
        _kill_training_after_epoch(proc, train_log, 3)
        log, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT)
    finally:
        h.stop_snakemake(proc, tmp_path)
    assert proc.returncode == 0, log[-6000:]
    assert len(set(h.submitted_job_ids(log))) >= 2, "the cancelled job was not resubmitted"
    resumed_from = int(re.search(r"from epoch (\d+)", train_log.read_text()).group(1))
    assert 4 <= resumed_from <= epochs, train_log.read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, epochs + 1))
