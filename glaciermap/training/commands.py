"""Sub-command ``train``: one run ``{model}/{hparams}/{dates}/{aug}/seed{seed}``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from glaciermap.config import load_config
from glaciermap.errors import ConfigError
from glaciermap.runs import AUG_MODES, MODEL_NAMES, HParams, RunKey
from glaciermap.training.interruption import RunInterrupted
from glaciermap.training.run import train_run
from glaciermap.training.settings import DEVICES, RunSettings
from glaciermap.utils.cli_options import add_config, add_dates, date_labels

log = logging.getLogger(__name__)


def _run_key(args: argparse.Namespace) -> RunKey:
    try:
        return RunKey(
            args.model,
            HParams.from_slug(args.hparams),
            tuple(date_labels(args.dates)),
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


TRAIN_EXAMPLES = """\
Settings other than the run's identity (epochs, batch size, learning rate and its
schedule, loss, ...) come from the config's training section.

examples:
  glaciermap train --model pspnet --hparams dropout0.4-softmax-mean --dates oct2000
  glaciermap train --config configs/study.yaml --model deeplabv3plus \\
      --hparams dropout0.2-sigmoid-max --dates july august --aug aug-concat --seed 2
  tensorboard --logdir results/runs
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one model; continues from last.pt when a previous attempt was killed",
        description="Train one run {model}/{hparams}/{dates}/{aug}/seed{seed} on the tile\n"
        "store; it writes best.pt, last.pt, metrics.json and TensorBoard events to its folder.",
        epilog=TRAIN_EXAMPLES,
    )
    add_config(p)
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="architecture")
    p.add_argument(
        "--hparams",
        required=True,
        help="hyperparameter cell dropout<p>-<activation>-<pooling>, e.g. dropout0.4-softmax-mean",
    )
    add_dates(p, "date labels to train on, e.g. july august", required=True)
    p.add_argument("--aug", choices=AUG_MODES, default="noaug", help="augmentation mode")
    p.add_argument("--seed", type=int, default=1, help="random seed of the run")
    p.add_argument("--tiles", default="results/tiles", help="folder of {date}/{split}.npz")
    p.add_argument("--runs", default="results/runs", help="parent of the run folders")
    p.add_argument(
        "--out", help="run folder (default: {runs}/{model}/{hparams}/{dates}/{aug}/seed{seed})"
    )
    p.add_argument(
        "--epochs", type=int, help="number of epochs (default: the config's training.epochs)"
    )
    p.add_argument(
        "--device", choices=DEVICES, help="device (default: the config's training.device)"
    )
    p.set_defaults(func=train_command)
