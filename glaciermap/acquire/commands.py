"""``glaciermap acquire-outlines`` and ``glaciermap acquire-scenes``."""

from __future__ import annotations

import argparse

from glaciermap.acquire.glims import acquire_outlines
from glaciermap.acquire.settings import (
    AcquireSettings,
    scene_targets,
    scl_invalid_classes,
    scl_targets,
)
from glaciermap.acquire.stac import download_scene
from glaciermap.config import load_config
from glaciermap.errors import ConfigError
from glaciermap.utils.cli_options import add_config, add_dates, add_option, date_labels


def run_outlines(args: argparse.Namespace) -> None:
    config = load_config(args.config, check_files=False)
    acquire_outlines(
        AcquireSettings.from_config(config["acquire"]),
        args.out or config["data"]["outlines"]["file"],
    )


def run_scenes(args: argparse.Namespace) -> None:
    config = load_config(args.config, check_files=False)
    settings = AcquireSettings.from_config(config["acquire"])
    targets = scene_targets(config)
    dates = date_labels(args.dates) or list(targets)
    if (args.out or args.scl_out) and len(dates) != 1:
        raise ConfigError("--out and --scl-out need exactly one date (--dates)")
    outlines = args.outlines or (
        config["data"]["outlines"]["file"] if settings.area.glaciers else None
    )
    scl = scl_targets(config)
    for date in dates:
        if date not in targets:
            raise ConfigError(f"config key 'acquire.dates': no window for date label '{date}'")
        download_scene(
            settings,
            date,
            args.out or targets[date],
            outlines=outlines,
            scl_output=args.scl_out or scl.get(date),
            invalid_classes=scl_invalid_classes(config, date),
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    outlines = subparsers.add_parser(
        "acquire-outlines", help="download the GLIMS outlines of the config's area"
    )
    add_config(outlines)
    add_option(
        outlines,
        "--out",
        deprecated=["--output"],
        help="GeoPackage to write (default: the config's data.outlines.file)",
    )
    outlines.set_defaults(func=run_outlines)

    scenes = subparsers.add_parser(
        "acquire-scenes", help="download one Sentinel-2 L2A scene per date label from STAC"
    )
    add_config(scenes)
    add_dates(
        scenes,
        "date labels of acquire.dates to download (default: all of them)",
        deprecated=["--date"],
    )
    add_option(
        scenes,
        "--out",
        deprecated=["--output"],
        help="scene file (one date only; default: its data.scenes file)",
    )
    add_option(
        scenes,
        "--scl-out",
        deprecated=["--scl-output"],
        help="merged SCL file (one date only; default: its data.scenes validity.scl, if any)",
    )
    scenes.add_argument(
        "--outlines",
        help="outlines defining an area given by glacier ids (default: data.outlines.file)",
    )
    scenes.set_defaults(func=run_scenes)
