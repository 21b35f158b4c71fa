"""Model quality of the demo recipe: test F1 per seed, mean ± std, the seed ensemble, the baseline.

Runs the workflow's main job (``snakemake results/table3.csv`` plus the
ensembles) on a config (default: the demo's ``config.yaml``) in a fresh
working directory, then reads the scores the workflow wrote for the final
configuration on every date's test region. Every setting, the stage winners
included, is chosen by the workflow on validation data; this script only
reads the test scores afterwards. Prints a Markdown table headed by the CPU
and the wall time of the run::

    python benchmarks/quality.py                   # the demo, 2 cores
    python benchmarks/quality.py --config my.yaml --cores 8 --keep work/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU's model name (the figures depend on it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_workflow(workdir: Path, config: Path, cores: int) -> float:
    """Run Table 3 and the ensembles in ``workdir``; return the wall time in seconds."""
    (workdir / "data").symlink_to(ROOT / "data", target_is_directory=True)
    shutil.copy(config, workdir / "config.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "snakemake", "results/table3.csv", "ensembles",
        "--cores", str(cores), "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the workflow failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return seconds


def test_f1(path: Path) -> float:
    return float(json.loads(path.read_text())["test"]["f1"])


def scores(workdir: Path, seeds: list[int]) -> pd.DataFrame:
    """One row per final configuration and date: per-seed F1s, ensemble and baseline F1."""
    results = workdir / "results"
    table = pd.read_csv(results / "table3.csv", keep_default_na=False, na_values=[""])
    finals = table[~table["baseline"].astype(bool) & ~table["ensemble"].astype(bool)]
    dates = [c[len("f1_") : -len("_mean")] for c in table.columns if c.endswith("_mean")]
    rows = []
    for _, final in finals.iterrows():
        configuration = f"{final['model']}/{final['hparams']}/{final['trained_on']}/{final['aug']}"
        for date in dates:
            evals = results / "eval"
            per_seed = [
                test_f1(evals / configuration / f"seed{seed}" / f"{date}.json") for seed in seeds
            ]
            ensemble = evals / "ensemble" / configuration / f"{date}.json"
            baseline = evals / "baseline" / final["trained_on"] / f"{date}.json"
            rows.append(
                {
                    "trained on": final["trained_on"],
                    "model": final["model"],
                    "test date": date,
                    "F1 per seed": " / ".join(f"{v:.3f}" for v in per_seed),
                    "mean ± std": f"{statistics.mean(per_seed):.3f} ± "
                    f"{statistics.stdev(per_seed):.3f}",
                    "ensemble F1": f"{test_f1(ensemble):.3f}" if ensemble.is_file() else "–",
                    "baseline F1": f"{test_f1(baseline):.3f}",
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="working directory to keep (default: temporary)")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    seeds = (config.get("final") or {}).get("seeds") or config.get("seeds", [1, 2, 3])
    if len(seeds) < 3:
        sys.exit(f"{args.config}: the final runs need at least 3 seeds (final.seeds), not {seeds}")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch) / "work"
        workdir.mkdir(parents=True, exist_ok=args.keep is not None)
        seconds = run_workflow(workdir, args.config, args.cores)
        table = scores(workdir, list(seeds))
    print(f"# Test F1 of {args.config.name} ({len(seeds)} seeds)")
    print(f"{cpu_name()}, {args.cores} cores; wall time of the workflow {seconds / 60:.1f} min\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
