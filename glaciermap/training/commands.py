"""Sub-command ``train``: one run ``{model}/{hparams}/{dates}/{aug}/seed{seed}``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from glaciermap.config import load_config
from glaciermap.errors import ConfigError
from glaciermap.runs import AUG_MODES, MODEL_NAMES, HParams, RunKey, split_dates
from glaciermap.training.interruption import RunInterrupted
from glaciermap.training.run import train_run
from glaciermap.training.settings import DEVICES, RunSettings

log = logging.getLogger(__name__)


def _run_key(args: argparse.Namespace) -> RunKey:
    try:
        return RunKey(
            args.model,
            HParams.from_slug(args.hparams),
            split_dates(args.dates),
            args.aug,
            args.seed,
        )
    except ValueError as exc:
        raise ConfigError(f"run --model/--hparams/--dates/--aug/--seed: {exc}") from exc


def train_command(args: argparse.Namespace) -> None:
    """Train one run from the config's settings (``--epochs``/``--device`` override them)."""
    # Schema and defaults only: training needs the tiles, not the scene files.
    config = load_config(args.config, check_files=False)
    settings = RunSettings.from_config(config, _run_key(args))
    overrides = {
        key: value
        for key, value in (("epochs", args.epochs), ("device", args.device))
        if value is not None
    }
    settings = dataclasses.replace(settings, **overrides)
    tiles = Path(args.tiles)
    out = Path(args.out) if args.out else Path(args.runs) / settings.key.path
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
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="architecture")
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
