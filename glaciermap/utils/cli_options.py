"""One command-line style for every ``glaciermap`` sub-command.

- ``--help`` keeps the line breaks of descriptions and epilogs (their examples)
  and appends each option's default to its help text;
- one spelling per concept: ``--out`` for what a command writes, ``--config``
  (default ``config.yaml``), ``--dates`` for one or more date labels;
- old spellings stay for one release as hidden aliases that still work and print
  a deprecation warning naming the new one.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from glaciermap.runs import split_dates

DEFAULT_CONFIG = "config.yaml"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; ``(default: X)`` after each option's help unless it
    names its default already; deprecated spellings left out."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
        ):
            return text
        return text + " (default: %(default)s)"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "deprecated_spellings", ())
        if hidden:
            action = copy.copy(action)
            action.option_strings = [s for s in action.option_strings if s not in hidden]
        return super()._format_action_invocation(action)


class GlacierMapParser(argparse.ArgumentParser):
    """An ArgumentParser with :class:`HelpFormatter` unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


class _WarnsOfDeprecatedSpellings(argparse.Action):
    """Mixed into an option's action: using an old spelling prints a warning."""

    deprecated_spellings: tuple[str, ...] = ()

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string in self.deprecated_spellings:
            print(
                f"{parser.prog}: warning: {option_string} is deprecated and will be removed "
                f"in the next release; use {self.option_strings[0]}",
                file=sys.stderr,
            )
        super().__call__(parser, namespace, values, option_string)


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    *,
    deprecated: Iterable[str] = (),
    **kwargs: Any,
) -> argparse.Action:
    """``parser.add_argument(name, **kwargs)`` that also accepts the ``deprecated``
    spellings (hidden from ``--help``, warning when used)."""
    old = tuple(deprecated)
    action = parser.add_argument(name, *old, **kwargs)
    if old:
        base = type(action)
        action.__class__ = type(
            f"Deprecated{base.__name__}", (_WarnsOfDeprecatedSpellings, base), {}
        )
        action.deprecated_spellings = old  # type: ignore[attr-defined]
    return action


def add_radiometry(parser: argparse.ArgumentParser, nodata_help: str) -> None:
    """How DNs become reflectance (``--product``, ``--processing-baseline``, ``--scale``,
    ``--offset``, ``--nodata``): the same in ``predict`` and ``evaluate-chips``."""
    parser.add_argument(
        "--product",
        choices=["generic", "sentinel2_l2a"],
        default="generic",
        help="generic: reflectance = (DN + --offset) * --scale; sentinel2_l2a: the L2A "
        "quantification and the offset of its processing baseline",
    )
    parser.add_argument(
        "--processing-baseline",
        help="Sentinel-2 processing baseline, e.g. 05.09 (default: read from the file names)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generic: (DN + offset) * scale, per DN"
    )
    parser.add_argument(
        "--offset", type=float, default=0.0, help="generic: added to the DN before --scale, DN"
    )
    parser.add_argument("--nodata", type=float, default=None, help=nodata_help)


def add_config(parser: argparse.ArgumentParser) -> None:
    """``--config``, the same in every sub-command that reads the workflow config."""
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, metavar="YAML", help="workflow config (YAML)"
    )


def add_dates(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    required: bool = False,
    deprecated: Iterable[str] = (),
) -> None:
    """``--dates LABEL [LABEL ...]``: one or more date labels of ``data.scenes``, space
    separated or joined with '+' as in run names (``july august`` = ``july+august``)."""
    add_option(
        parser,
        "--dates",
        deprecated=deprecated,
        nargs="+",
        action="extend",
        metavar="LABEL",
        required=required,
        help=help + "; several: space separated, or joined with '+' as in run names",
    )


def date_labels(values: Sequence[str] | None) -> list[str]:
    """The labels of ``--dates`` values (``['july+august', 'sept']`` -> three labels)."""
    return [label for value in values or () for label in split_dates(value) if label]
