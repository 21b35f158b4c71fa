"""How many SLURM jobs the study config submits through `--profile slurm`, with
and without packing, counted from Snakemake dry runs (docs/cluster.md quotes it).

The dry runs use benchmarks/dryrun_study.py's copy of configs/study.yaml (the
demo scene in place of the placeholder files; dates, models, grid and seeds are
the study's) in a scratch folder:
- "first stage": nothing pinned, so only model selection is planned (later
  stages wait for its checkpoint table);
- "full matrix": every stage winner pinned, so every run is planned at once.

With packing, a SLURM job is a group job or a job outside any group; without,
every job is one SLURM job.

Usage: python tests/cluster/count_slurm_jobs.py
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "dryrun_study", REPO / "benchmarks" / "dryrun_study.py"
)
dryrun_study = importlib.util.module_from_spec(_spec)
sys.modules["dryrun_study"] = dryrun_study
_spec.loader.exec_module(dryrun_study)

GROUP_HEADER = re.compile(r"^\[.*\] Group job (\S+)")
JOB = re.compile(r"^(\s*)(rule|checkpoint) (\w+):$")
NO_RUN = {"all"}  # target rules without a command: never submitted


def count_jobs(output: str) -> dict[str, int]:
    """SLURM jobs with packing (group jobs + jobs outside groups) and without
    (every job alone), and training runs, from a dry run's output."""
    lines = output.splitlines()
    jobs = [(m[1], m[3]) for line in lines if (m := JOB.match(line)) and m[3] not in NO_RUN]
    group_jobs = sum(1 for line in lines if GROUP_HEADER.match(line))
    return {
        "packed": group_jobs + sum(1 for indent, _ in jobs if not indent),
        "unpacked": len(jobs),
        "training_runs": sum(1 for _, rule in jobs if rule == "train"),
    }


def group_members(output: str) -> dict[str, list[str]]:
    """Rules of the jobs in each group job (indented under its header)."""
    groups: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if header := GROUP_HEADER.match(line):
            current = groups.setdefault(header[1], [])
        elif current is not None and (job := JOB.match(line)) and job[1]:
            current.append(job[3])
        elif line.startswith(("[", "Job")):  # a job outside groups, or the end
            current = None
    return groups


def dry_run(config: dict, targets: tuple[str, ...], workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").symlink_to(REPO / "data", target_is_directory=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        sys.executable, "-m", "snakemake", *targets, "--dry-run",
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(REPO / "slurm"),
        # The dry run needs no container; env-modules is a no-op for these rules.
        "--software-deployment-method", "env-modules",
        "--configfile", str(configfile),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, pinned, targets in (
            ("first stage", False, ("results/table3.csv",)),
            ("full matrix", True, dryrun_study.ALL_TABLES),
        ):
            output = dry_run(dryrun_study.study_config(pinned), targets, Path(tmp) / name[:5])
            counts = count_jobs(output)
            print(
                f"{name}: {counts['training_runs']} training runs; SLURM jobs: "
                f"{counts['packed']} with packing, {counts['unpacked']} without"
            )


if __name__ == "__main__":
    main()
