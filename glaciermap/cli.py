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
from glaciermap.utils.atomic import output_error
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
    parser = argparse.ArgumentParser(prog="glaciermap", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"glaciermap {__version__}")
    parser.add_argument("--log", help="also write the log to this file")
    subparsers = parser.add_subparsers(dest="command", required=True)
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
    setup_logging(args.log)
    try:
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
