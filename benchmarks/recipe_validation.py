"""Training recipes compared on validation data only: selection score over seeds.

Trains each recipe (the demo's settings with some changed) on the tile store of
a prepared demo (``snakemake --cores 2 results/tiles/oct2000/stats.json``)
for several seeds, two runs at a time with one thread each, and prints the
selection score (mean validation F1 of the last epochs) as mean ± std over the
seeds, the validation curve of the first seed and the seconds per run. No test
tile is read: this is how the demo's recipe was chosen. Example::

    python benchmarks/recipe_validation.py --tiles results/tiles/oct2000 \\
        --recipes demo study dataset-normalisation aux0

Recipes are named changes to the demo's settings (``RECIPES``); add your own
with ``--set name key=value ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from glaciermap.config import validate_config
from glaciermap.runs import HParams, RunKey
from glaciermap.training.run import train_run
from glaciermap.training.settings import RunSettings

ROOT = Path(__file__).resolve().parents[1]
# Changes to the demo's training settings (config.yaml) and its run key.
RECIPES: dict[str, dict[str, Any]] = {
    "demo": {},
    "study": {
        "optimizer": "adam", "weight_decay": 0.0, "lr_schedule": "constant",
        "warmup_epochs": 0, "loss": "bce", "normalization": "dataset",
    },
    "dataset-normalisation": {"normalization": "dataset"},
    "bce": {"loss": "bce"},
    "constant-lr": {"lr_schedule": "constant", "warmup_epochs": 0},
    "aux0": {"aux_weight": 0.0},
    "pspnet": {"model": "pspnet"},
    "aug-geometric": {"aug": "aug-geometric"},
}  # fmt: skip
_KEY = ("model", "aug")


def settings_of(config: dict[str, Any], changes: dict[str, Any], seed: int) -> RunSettings:
    """The demo run of ``seed`` with ``changes`` (training keys, ``model`` or ``aug``)."""
    key = RunKey(
        changes.get("model", config["model_selection"]["models"][0]),
        HParams.from_mapping(config["model_selection"]["hparams"]),
        tuple(config["data"]["scenes"]),
        changes.get("aug", "noaug"),
        seed,
    )
    training = {k: v for k, v in changes.items() if k not in _KEY}
    changed = {**config, "training": {**config["training"], **training}}
    return RunSettings.from_config(changed, key)


def one_run(job: tuple[RunSettings, Path, Path]) -> dict[str, Any]:
    settings, tiles, out = job
    start = time.perf_counter()
    metrics = train_run(
        settings, [tiles / "train.npz"], [tiles / "val.npz"], [tiles / "stats.json"], out
    )
    return {
        "seed": settings.seed,
        "score": metrics["selection_score"],
        "curve": [round(e["val_f1"], 3) for e in metrics["epochs"]],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--tiles", type=Path, default=Path("results/tiles/oct2000"))
    parser.add_argument("--recipes", nargs="+", default=["demo", "dataset-normalisation"])
    parser.add_argument("--set", nargs="+", action="append", default=[], metavar="NAME K=V")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = validate_config(yaml.safe_load(args.config.read_text()))
    recipes = {name: RECIPES[name] for name in args.recipes}
    for name, *pairs in args.set:
        recipes[name] = {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs)}
    print("| recipe | changes | selection score per seed | mean ± std | val F1 per epoch "
          "(first seed) | s per run |\n|---|---|---|---|---|---:|")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(args.workers) as pool:
        for name, changes in recipes.items():
            jobs = [
                (settings_of(config, changes, s), args.tiles, Path(scratch) / name / str(s))
                for s in args.seeds
            ]
            results = list(pool.map(one_run, jobs))
            scores = [r["score"] for r in results]
            spread = statistics.stdev(scores) if len(scores) > 1 else float("nan")
            print(
                f"| {name} | {changes or '(config.yaml)'} | "
                f"{' / '.join(f'{s:.3f}' for s in scores)} | "
                f"{statistics.mean(scores):.3f} ± {spread:.3f} | {results[0]['curve']} | "
                f"{statistics.mean(r['seconds'] for r in results):.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
