"""Sub-command ``train``: one run ``{model}/{hparams}/{dates}/{aug}/seed{seed}``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from glaciermap.config import load_config
from glaciermap.training.augmentation import AUG_MODES
from glaciermap.training.interruption import RunInterrupted
from glaciermap.training.run import train_run
from glaciermap.training.settings import DEVICES, RunSettings

log = logging.getLogger(__name__)


def run_folder(runs_dir: str | Path, settings: RunSettings) -> Path:
    """``{runs_dir}/{model}/{hparams}/{dates}/{aug}/seed{seed}`` (docs/architecture.md)."""
    return (
        Path(runs_dir)
        / settings.model
        / settings.hparams.slug
        / "+".join(settings.dates)
        / settings.aug
        / f"seed{settings.seed}"
    )


def train_command(args: argparse.Namespace) -> None:
    # Schema and defaults only: training needs the tiles, not the scene files.
    config = load_config(args.config, check_files=False)
    settings = RunSettings.from_config(
        config, args.model, args.hparams, args.dates, args.aug, args.seed
    )
    overrides = {
        key: value
        for key, value in (("epochs", args.epochs), ("device", args.device))
        if value is not None
    }
    settings = dataclasses.replace(settings, **overrides)
    tiles = Path(args.tiles)
    out = Path(args.out) if args.out else run_folder(args.runs, settings)
    try:
        train_run(
            settings,
            [tiles / date / "train.npz" for date in settings.dates],
            [tiles / date / "val.npz" for date in settings.dates],
            [tiles / date / "stats.json" for date in settings.dates],
            out,
        )
    except RunInterrupted as exc:
        log.error("%s", exc)
        raise SystemExit(exc.exit_code) from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one model; continues from last.pt when a previous attempt was killed",
    )
    p.add_argument("--config", default="config.yaml", help="workflow config (default config.yaml)")
    p.add_argument("--model", required=True, help="architecture, e.g. deeplabv3plus")
    p.add_argument("--hparams", required=True, help="e.g. dropout0.4-softmax-mean")
    p.add_argument("--dates", required=True, help="date label(s) joined with '+', e.g. july+august")
    p.add_argument("--aug", choices=AUG_MODES, default="noaug")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tiles", default="results/tiles", help="folder of {date}/{split}.npz")
    p.add_argument("--runs", default="results/runs", help="parent of the run folders")
    p.add_argument("--out", help="run folder (default: {runs}/{model}/{hparams}/{dates}/...)")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--device", choices=DEVICES, help="override training.device")
    p.set_defaults(func=train_command)
