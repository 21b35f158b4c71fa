"""Helpers of the SLURM tests: bring a one-node cluster up and down, run the
workflow through the test profile in a scratch folder, read SLURM's records.

The cluster is real (Debian's slurmctld, slurmd and munge, see start_slurm.sh);
nothing here imitates SLURM.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for conftest
import conftest  # noqa: E402

REPO = conftest.ROOT
CLUSTER = REPO / "tests" / "cluster"
PROFILE = REPO / "tests" / "slurm_profile"
PROFILE_ARGS = ("--profile", str(PROFILE))
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")  # JobCompLoc of start_slurm.sh
LOCK_FILE = Path(tempfile.gettempdir()) / "glaciermap-slurm-test.lock"
CANNOT_INSTALL = 3  # start_slurm.sh's exit status when SLURM cannot be installed

SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


class SlurmUnavailable(RuntimeError):
    """The SLURM daemons cannot be installed on this machine."""


@contextmanager
def one_node_cluster() -> Iterator[None]:
    """Start the cluster (installing it when missing); always stop what was started.

    Test sessions on one machine take turns (a lock file): one session's teardown
    must not stop the daemons under another's running workflow.
    """
    # Own state folder: stop_slurm.sh stops what this start started, nothing else.
    state = tempfile.mkdtemp(prefix="glaciermap-slurm-")
    env = {**os.environ, "GLACIERMAP_SLURM_STATE": state}
    lock = open(LOCK_FILE, "w")  # held until the end of the block
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        started = subprocess.run(
            [str(CLUSTER / "start_slurm.sh")], capture_output=True, text=True, timeout=600, env=env
        )
        if started.returncode == CANNOT_INSTALL:
            raise SlurmUnavailable(started.stderr.strip())
        if started.returncode != 0:
            raise RuntimeError(f"start_slurm.sh failed:\n{started.stdout}\n{started.stderr}")
        yield
    finally:
        subprocess.run([str(CLUSTER / "stop_slurm.sh")], timeout=120, check=False, env=env)
        shutil.rmtree(state, ignore_errors=True)
        lock.close()  # releases the lock


def make_workdir(path: Path, config_changes: dict | None = None) -> Path:
    """A scratch working folder with the repository's data and a copy of the tiny
    config (changed by ``config_changes``, merged one level deep); returns the config."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").symlink_to(REPO / "data", target_is_directory=True)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for key, value in (config_changes or {}).items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    config_file = path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_file


def snakemake_command(workdir: Path, config_file: Path, *extra: str) -> list[str]:
    """Snakemake with the SLURM executor through the test profile (for ``Popen``)."""
    return conftest.snakemake_command(workdir, *PROFILE_ARGS, *extra, config=config_file)


def job_environment() -> dict[str, str]:
    """The jobs re-run Snakemake on the node: this Python and this checkout first."""
    return conftest.snakemake_env()


def submitted_job_ids(log: str) -> list[int]:
    return [int(m) for m in SUBMITTED.findall(log)]


def completed_job_states(job_ids: list[int]) -> dict[int, str]:
    """JobState of finished jobs, from SLURM's job completion file."""
    states = {}
    if JOBCOMP_LOG.exists():
        for line in JOBCOMP_LOG.read_text().splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            job_id = int(fields.get("JobId", -1))
            if job_id in job_ids:
                states[job_id] = fields.get("JobState", "")
    return states


def running_job_ids(comment_part: str) -> list[int]:
    """Ids of running SLURM jobs whose comment (Snakemake puts the rule there) contains
    ``comment_part``."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[0]) for line in out.splitlines() if comment_part in line]


def cancel_jobs_under(workdir: Path) -> None:
    """scancel the jobs still queued or running whose working folder is ``workdir``
    (left behind when a test stops Snakemake the hard way)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, check=False
    ).stdout
    job_ids = [
        line.split()[0]
        for line in out.splitlines()
        if len(line.split()) == 2 and Path(line.split()[1]) == workdir.resolve()
    ]
    if job_ids:
        subprocess.run(["scancel", *job_ids], check=False)


def stop_snakemake(proc: subprocess.Popen, workdir: Path) -> None:
    """Stop a Snakemake that is still running (Ctrl-C first, so that it cancels its
    SLURM jobs), then cancel whatever it left in the queue."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cancel_jobs_under(workdir)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)


def slurm_installed() -> bool:
    return all(shutil.which(b) for b in ("sbatch", "squeue", "scancel"))
