"""Time the dry run of the study config (configs/study.yaml) and count its jobs.

The study's scenes and outlines are downloaded by the acquire rules, which
would come first in the plan, so the dry run points the study's two dates at
the embedded demo scene with acquire off (only the files change: dates,
models, grid, seeds and epochs stay the study's). It runs in a temporary working
directory, so existing results/ do not hide jobs.

Two dry runs:
- ``results/table3.csv`` as is: only model selection is planned (the later
  stages wait for its checkpoint table);
- the four tables with every stage winner pinned: the full matrix.

A standalone script: tests do not import it. Their dry runs use the same
study config from tests/conftest.py (``Study``); keep the two in step.

Usage: python benchmarks/dryrun_study.py   (prints counts and seconds; the
issue asks for under 10 s per dry run)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = {
    "rgb": "data/everest/LE71400412000304SGS00_RGB.tif",
    "nir": "data/everest/LE71400412000304SGS00_B4.tif",
    "outlines": "data/everest/15_rgi60_glacier_outlines.gpkg",
}
ALL_TABLES = (
    "results/table1_models.csv",
    "results/table2_hparams.csv",
    "results/table_augmentation.csv",
    "results/table3.csv",
)
PINS = {
    "model_selection": {"winner": "deeplabv3plus"},
    "hparam_grid": {"winner": {"dropout": 0.5, "activation": "sigmoid", "pooling": "mean"}},
    "augmentation": {"winner": "noaug"},
}
_JOB_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+(\d+)$")


def study_config(pinned: bool = False) -> dict:
    """configs/study.yaml with the demo files in place of the downloaded scenes and outlines."""
    config = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())
    config["acquire"]["enabled"] = False  # the demo files are there already
    for scene in config["data"]["scenes"].values():
        scene.pop("processing_baseline", None)
        scene.pop("file", None)
        scene.pop("validity", None)  # the demo scene has no SCL: every pixel counts as seen
        scene.update(product="generic", scale=1 / 255)
        scene["bands"] = {
            "blue": {"file": DEMO["rgb"], "band": 3},
            "green": {"file": DEMO["rgb"], "band": 2},
            "red": {"file": DEMO["rgb"], "band": 1},
            "nir": DEMO["nir"],
        }
    config["data"]["outlines"] = {"file": DEMO["outlines"], "format": "rgi"}
    config["data"]["regions"] = {
        "train": {"bbox": [478000, 3088490, 502000, 3099000]},
        "test": {"bbox": [478000, 3099000, 502000, 3108140]},
    }
    if pinned:
        for section, pin in PINS.items():
            config[section].update(pin)
    return config


@dataclass(frozen=True)
class DryRun:
    counts: dict[str, int]  # jobs per rule
    seconds: float  # wall time of the whole snakemake command
    output: str  # what it printed (job details)


def dry_run(config: dict, targets: tuple[str, ...], workdir: Path) -> DryRun:
    """Run ``snakemake -n`` on ``config`` in ``workdir`` (data/ linked from the repository)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    if not data.exists():
        data.symlink_to(ROOT / "data", target_is_directory=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    # Targets first: --configfile takes every following argument as a file.
    command = [
        sys.executable, "-m", "snakemake", *targets, "-n", "--cores", "1",
        "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    output = done.stdout + done.stderr
    return DryRun(job_counts(output), seconds, output)


def startup_seconds(workdir: Path) -> float:
    """Wall time of a dry run of a one-rule workflow: what Snakemake itself costs.

    It includes the executor plugins' start-up; e.g. the SLURM plugin asks
    ``scontrol show config``, which waits ~9 s when slurmctld is installed but
    not running.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    snakefile = workdir / "Snakefile"
    snakefile.write_text('rule empty:\n    output: "empty.txt"\n    shell: "touch {output}"\n')
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(snakefile)]
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, capture_output=True, check=True)
    return time.perf_counter() - start


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a Snakemake dry run."""
    counts: dict[str, int] = {}
    in_stats = False
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Job stats"):
            in_stats, counts = True, {}
        elif in_stats:
            match = _JOB_LINE.match(line)
            if match and match[1] != "total":
                counts[match[1]] = int(match[2])
            elif line.startswith("total"):
                in_stats = False
    return counts


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"Snakemake start-up (one-rule workflow): {startup_seconds(Path(tmp) / 'empty'):.1f} s"
        )
        for name, pinned, targets in (
            ("unpinned (model selection only)", False, ("results/table3.csv",)),
            ("pinned winners (full matrix)", True, ALL_TABLES),
        ):
            result = dry_run(study_config(pinned), targets, Path(tmp) / name[:8])
            print(
                f"{name}: {result.counts.get('train', 0)} training runs, "
                f"{sum(result.counts.values())} jobs, dry run {result.seconds:.1f} s"
            )


if __name__ == "__main__":
    main()
