"""How much validation F1 jumps from epoch to epoch, with and without an EMA of the weights.

Trains the config's first selection model on prepared tile stores (a scene's
``results/tiles/{date}`` or a chip set's ``results/chips/{label}``; several are
pooled like ``{dates}``) for several seeds, once per ``training.ema_decay`` value
(``none`` = the raw weights), two runs at a time with one thread each, and
prints per setting the mean absolute epoch-to-epoch change of validation F1
(over epochs and seeds), the largest drop, and the selection score as mean ±
std over the seeds. Validation data only, no test tile. Example::

    python benchmarks/ema_stability.py --tiles results/chips/alps \\
        --decays none 0.99 0.995 --seeds 1 2 3 --epochs 10
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from glaciermap.config import validate_config
from glaciermap.runs import HParams, RunKey
from glaciermap.training.run import train_run
from glaciermap.training.settings import RunSettings

ROOT = Path(__file__).resolve().parents[1]


def one_run(job: tuple[RunSettings, list[Path], Path]) -> list[float]:
    """Validation F1 per epoch of one run."""
    settings, tiles, out = job
    metrics = train_run(
        settings,
        [t / "train.npz" for t in tiles],
        [t / "val.npz" for t in tiles],
        [t / "stats.json" for t in tiles],
        out,
    )
    return [e["val_f1"] for e in metrics["epochs"]]


def cpu_name() -> str:
    """The CPU model (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def jumps(curve: list[float]) -> list[float]:
    """Epoch-to-epoch changes of a validation curve."""
    return [b - a for a, b in zip(curve, curve[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--tiles", type=Path, nargs="+", default=[Path("results/tiles/oct2000")])
    parser.add_argument("--decays", nargs="+", default=["none", "0.99"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, help="default: the config's training.epochs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = validate_config(yaml.safe_load(args.config.read_text()))
    training: dict[str, Any] = {**config["training"], "threads": 1, "device": "cpu"}
    if args.epochs:
        training["epochs"] = args.epochs
    print(f"CPU: {cpu_name()}; tiles: {', '.join(str(t) for t in args.tiles)}")
    print("| ema_decay | mean abs. jump of val F1 | largest drop | selection score "
          "mean ± std | val F1 per epoch (first seed) |\n|---|---:|---:|---|---|")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(args.workers) as pool:
        for decay in args.decays:
            value = None if decay == "none" else float(decay)
            jobs = []
            for seed in args.seeds:
                key = RunKey(
                    config["model_selection"]["models"][0],
                    HParams.from_mapping(config["model_selection"]["hparams"]),
                    tuple(t.name for t in args.tiles),
                    "noaug",
                    seed,
                )
                run_config = {**config, "training": {**training, "ema_decay": value}}
                out = Path(scratch) / decay / str(seed)
                jobs.append((RunSettings.from_config(run_config, key), args.tiles, out))
            curves = list(pool.map(one_run, jobs))
            steps = [step for curve in curves for step in jumps(curve)]
            last = training["selection_epochs"]
            scores = [statistics.mean(curve[-last:]) for curve in curves]
            spread = statistics.stdev(scores) if len(scores) > 1 else float("nan")
            print(
                f"| {decay} | {statistics.mean(abs(s) for s in steps):.3f} | "
                f"{max(0.0, -min(steps)):.3f} | {statistics.mean(scores):.3f} ± {spread:.3f} | "
                f"{[round(f, 3) for f in curves[0]]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
