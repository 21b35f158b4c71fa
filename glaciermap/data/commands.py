"""``glaciermap`` sub-commands of data preparation (the same functions the rules call)."""

from __future__ import annotations

import argparse
from pathlib import Path

from glaciermap.config import load_config
from glaciermap.data import prepare
from glaciermap.utils.cli_options import add_config, add_option


def _prepare_scene(args: argparse.Namespace) -> None:
    data = load_config(args.config)["data"]
    validity = args.validity_out or Path(args.out).parent.parent / "validity" / Path(args.out).name
    prepare.prepare_scene(data, args.date, args.out, validity)


def _rasterize(args: argparse.Namespace) -> None:
    data = load_config(args.config)["data"]
    prepare.prepare_mask(data, args.date, args.scene, args.out)


def _regions(args: argparse.Namespace) -> None:
    data = load_config(args.config)["data"]
    prepare.prepare_regions(data, args.scene, args.out)


def _tiles(args: argparse.Namespace) -> None:
    data = load_config(args.config)["data"]
    prepare.prepare_tiles(args.scene, args.mask, args.regions, data["tiles"], args.out)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add prepare-scene, rasterize, regions and tiles to the ``glaciermap`` command."""
    p = subparsers.add_parser(
        "prepare-scene", help="scene of one date -> 4-band float32 GeoTIFF on the reference grid"
    )
    add_config(p)
    p.add_argument("--date", required=True, help="scene label in data.scenes")
    p.add_argument("--out", required=True, help="output GeoTIFF (results/scenes/{date}.tif)")
    p.add_argument(
        "--validity-out",
        help="output validity raster (0 no data, 1 valid, 2 masked; default: "
        "validity/<name> next to the folder of --out, results/validity/{date}.tif)",
    )
    p.set_defaults(func=_prepare_scene)

    p = subparsers.add_parser("rasterize", help="outlines -> glacier mask on the scene grid")
    add_config(p)
    p.add_argument("--date", required=True, help="scene label (picks the nearest GLIMS analysis)")
    p.add_argument("--scene", required=True, help="prepared scene GeoTIFF")
    p.add_argument("--out", required=True, help="output mask (results/masks/{date}.tif)")
    p.set_defaults(func=_rasterize)

    p = subparsers.add_parser("regions", help="train/val/test split raster on the scene grid")
    add_config(p)
    p.add_argument("--scene", required=True, help="prepared scene of the reference date")
    p.add_argument("--out", required=True, help="output raster (results/regions.tif)")
    p.set_defaults(func=_regions)

    p = subparsers.add_parser("tiles", help="scene + mask -> train/val/test tile files + stats")
    add_config(p)
    p.add_argument(
        "--scene", required=True, help="prepared scene GeoTIFF (results/scenes/{date}.tif)"
    )
    p.add_argument(
        "--mask", required=True, help="reference mask on its grid (results/masks/{date}.tif)"
    )
    p.add_argument("--regions", required=True, help="split raster (results/regions.tif)")
    add_option(
        p,
        "--out",
        deprecated=["--out-dir"],
        required=True,
        help="output folder of {train,val,test}.npz and stats.json (results/tiles/{date})",
    )
    p.set_defaults(func=_tiles)
