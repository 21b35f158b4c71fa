"""The ``glaciermap`` command: one sub-command per stage.

Each area of the package contributes its sub-commands through a module with a
``register(subparsers)`` function, listed in ``COMMAND_MODULES``; a module that
is not importable (an optional area not installed) is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from glaciermap import __version__
from glaciermap.errors import GlacierMapError
from glaciermap.utils import progress
from glaciermap.utils.atomic import output_error
from glaciermap.utils.cli_options import GlacierMapParser
from glaciermap.utils.jobs import debugging
from glaciermap.utils.logs import setup_logging

COMMAND_MODULES = (
    "glaciermap.data.commands",
    "glaciermap.training.commands",
    "glaciermap.inference.commands",
    "glaciermap.evaluation.commands",
    "glaciermap.reporting.commands",
    "glaciermap.acquire.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = GlacierMapParser(prog="glaciermap", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"glaciermap {__version__}")
    parser.add_argument("--log", help="also write the log to this file (default: stderr only)")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only, no progress"
    )
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also debug messages")
    parser.add_argument(
        "--progress-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between progress log lines when stderr is not a terminal (default: "
        f"${progress.INTERVAL_VARIABLE}, else {progress.DEFAULT_INTERVAL_S:g} s)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=GlacierMapParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    setup_logging(args.log, level)
    try:
        progress.configure(mode="off" if args.quiet else None, interval=args.progress_interval)
        args.func(args)
    except GlacierMapError as exc:
        logging.getLogger("glaciermap").error("%s", exc)
        if debugging():
            raise
        return 1
    except OSError as exc:  # a full disk or no permission outside the atomic writers
        said = output_error(exc, exc.filename or "an output")
        if said is None or debugging():
            raise
        logging.getLogger("glaciermap").error("%s", said)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
