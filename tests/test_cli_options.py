"""One command-line style: help on every option, examples, old spellings that still work."""

from __future__ import annotations

import argparse
import re

import pytest

from glaciermap.cli import build_parser
from glaciermap.runs import split_dates
from glaciermap.utils.cli_options import date_labels

EXAMPLE_COMMANDS = ("predict", "evaluate-chips", "evaluate", "train")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"glaciermap": parser, **action.choices}


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def test_every_option_of_every_subcommand_has_help_with_its_default():
    commands = subcommands()
    assert {"predict", "train", "tiles", "acquire-scenes", "evaluate-chips"} <= set(commands)
    missing, no_default = [], []
    for name, parser in commands.items():
        formatter = parser._get_formatter()
        for action in options(parser):
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(label)
                continue
            shown = formatter._expand_help(action)
            default = action.default
            silent = default is None or default is False or default in ("", argparse.SUPPRESS)
            if action.option_strings and not silent and "default" not in shown:
                no_default.append(label)
    assert missing == []
    assert no_default == []


@pytest.mark.parametrize("command", EXAMPLE_COMMANDS)
def test_help_of_commands_run_by_hand_shows_an_example(command):
    text = subcommands()[command].format_help()
    assert "example" in text and f"glaciermap {command} --" in text


TILES = ["tiles", "--scene", "s", "--mask", "m", "--regions", "r"]
CHIPS = ["evaluate-chips", "--checkpoint", "c", "--images", "i", "--masks", "m"]


@pytest.mark.parametrize(
    ("argv", "dest", "value", "old"),
    [
        ([*TILES, "--out-dir", "t"], "out", "t", "--out-dir"),
        (["acquire-outlines", "--output", "o.gpkg"], "out", "o.gpkg", "--output"),
        (["acquire-scenes", "--date", "july", "--date", "aug"], "dates", ["july", "aug"], "--date"),
        (["acquire-scenes", "--scl-output", "s.tif"], "scl_out", "s.tif", "--scl-output"),
        ([*CHIPS, "--csv", "x.csv"], "out", "x.csv", "--csv"),
    ],
)
def test_old_spellings_still_work_and_warn(argv, dest, value, old, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert f"{old} is deprecated" in err and "use --" in err
    # hidden from the help (as a whole word: --date is in --dates)
    assert not re.search(re.escape(old) + r"(?![\w-])", subcommands()[argv[0]].format_help())


def test_new_spellings_do_not_warn(capsys):
    args = build_parser().parse_args(["acquire-scenes", "--dates", "july", "--out", "x.tif"])
    assert (args.out, args.dates, args.config) == ("x.tif", ["july"], "config.yaml")
    assert capsys.readouterr().err == ""


def test_several_dates_one_way_in_every_command():
    parser = build_parser()
    train = ["train", "--model", "pspnet", "--hparams", "dropout0.4-softmax-mean"]
    spaced = parser.parse_args([*train, "--dates", "july", "august"])
    joined = parser.parse_args([*train, "--dates", "july+august"])
    assert date_labels(spaced.dates) == date_labels(joined.dates) == ["july", "august"]
    assert tuple(date_labels(joined.dates)) == split_dates("july+august")
    scenes = parser.parse_args(["acquire-scenes", "--dates", "july+august"])
    assert date_labels(scenes.dates) == ["july", "august"]


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-q", "-v", "train"])
    assert "not allowed with" in capsys.readouterr().err
