"""How many SLURM jobs the study config submits through `--profile slurm`, with
and without packing, counted from Snakemake dry runs (docs/cluster.md quotes it).

The dry runs use tests/conftest.py's study config (configs/study.yaml with the
demo scene in place of the downloaded files; dates, models, grid and seeds are
the study's) in a scratch folder:
- "first stage": nothing pinned, so only model selection is planned (later
  stages wait for its checkpoint table);
- "full matrix": every stage winner pinned, so every run is planned at once.

With packing, a SLURM job is a group job or a job outside any group; without,
every job is one SLURM job.

Usage: python tests/cluster/count_slurm_jobs.py
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for conftest
from conftest import ROOT, Study, run_dry_run  # noqa: E402

GROUP_HEADER = re.compile(r"^\[.*\] Group job (\S+)")
JOB = re.compile(r"^(\s*)(rule|checkpoint) (\w+):$")
NO_RUN = {"all"}  # target rules without a command: never submitted
# The dry run needs no container; env-modules is a no-op for these rules.
SLURM_PROFILE = ("--profile", str(ROOT / "slurm"), "--software-deployment-method", "env-modules")


def slurm_dry_run(workdir: Path, config: dict, targets: tuple[str, ...]) -> str:
    """What ``snakemake --profile slurm --dry-run`` prints for ``targets``."""
    return run_dry_run(workdir, config, *targets, *SLURM_PROFILE).output


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, pinned in (("first stage", False), ("full matrix", True)):
            config, targets = Study.config(pinned), Study.targets(pinned)
            counts = count_jobs(slurm_dry_run(Path(tmp) / name[:5], config, targets))
            print(
                f"{name}: {counts['training_runs']} training runs; SLURM jobs: "
                f"{counts['packed']} with packing, {counts['unpacked']} without"
            )


if __name__ == "__main__":
    main()
