"""Sub-commands ``evaluate``, ``baseline-fit``, ``baseline-predict`` and ``evaluate-chips``."""

from __future__ import annotations

import argparse

from glaciermap.bands import band_index_spec
from glaciermap.evaluation.baseline import fit_baseline, predict_baseline
from glaciermap.evaluation.chips import EVALUATE_CHIPS_DESCRIPTION, evaluate_chips_command
from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.labels import GLACIER, NODATA


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="F1/IoU/precision/recall of a predicted mask in the test and train regions"
    )
    p.add_argument("--prediction", required=True, help="predicted mask.tif (0/1, 255 nodata)")
    p.add_argument("--reference", required=True, help="results/masks/{date}.tif")
    p.add_argument("--regions", required=True, help="results/regions.tif")
    p.add_argument("--out", required=True, help="output JSON (results/eval/{run}/{date}.json)")
    p.add_argument("--run", help="run label stored in the JSON")
    p.add_argument("--date", help="date label stored in the JSON")
    p.set_defaults(
        func=lambda a: evaluate_prediction(
            a.prediction, a.reference, a.regions, a.out, run=a.run, date=a.date
        )
    )

    p = subparsers.add_parser(
        "baseline-fit", help="fit the per-band threshold baseline on training tiles"
    )
    p.add_argument("--train", nargs="+", required=True, help="results/tiles/{date}/train.npz")
    p.add_argument("--val", nargs="*", default=[], help="results/tiles/{date}/val.npz")
    p.add_argument("--out", required=True, help="output JSON with the fitted rules")
    p.add_argument("--max-rules", type=int, default=3, help="most threshold rules (default 3)")
    p.add_argument(
        "--channels",
        default="blue,green,red,nir",
        help="the tiles' channels, comma separated (data.channels; default blue,green,red,nir)",
    )
    p.set_defaults(
        func=lambda a: fit_baseline(
            a.train,
            a.out,
            val_tiles=a.val,
            max_rules=a.max_rules,
            channels=[c.strip() for c in a.channels.split(",") if c.strip()],
        )
    )

    p = subparsers.add_parser(
        "baseline-predict", help="apply the threshold baseline to a scene, write a mask GeoTIFF"
    )
    p.add_argument("--model", required=True, help="baseline JSON from baseline-fit")
    p.add_argument("--scene", required=True, help="results/scenes/{date}.tif")
    p.add_argument("--out", required=True, help="output mask GeoTIFF")
    p.set_defaults(func=lambda a: predict_baseline(a.model, a.scene, a.out))

    _register_evaluate_chips(subparsers)


def _value_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        message = f"{text!r} is not a comma-separated list of integers"
        raise argparse.ArgumentTypeError(message) from None


def _register_evaluate_chips(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-chips",
        help="score checkpoints on a folder of labelled chips (pooled F1/IoU/precision/recall)",
        description=EVALUATE_CHIPS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        help="best.pt of a run; give it several times for their mean probability",
    )
    parser.add_argument("--images", required=True, help="glob of the chip images (quote it)")
    masks = parser.add_mutually_exclusive_group(required=True)
    masks.add_argument("--masks", help="mask path pattern with {stem}, e.g. 'masks/{stem}.tif'")
    masks.add_argument("--outlines", help="glacier outlines (GLIMS/RGI) rasterised on each chip")
    parser.add_argument("--outlines-format", choices=["auto", "glims", "rgi"], default="auto")
    parser.add_argument(
        "--bands",
        default=band_index_spec(),
        help="NAME=INDEX in each chip file, comma separated (default blue=1,green=2,red=3,nir=4)",
    )
    parser.add_argument("--product", choices=["generic", "sentinel2_l2a"], default="generic")
    parser.add_argument("--processing-baseline", help="Sentinel-2 baseline, e.g. 05.09")
    parser.add_argument("--scale", type=float, default=1.0, help="generic: (DN + offset) * scale")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--nodata", type=float, default=None, help="image DN marking nodata")
    parser.add_argument(
        "--ignore", type=_value_list, default=[NODATA], help="mask values with no label (255)"
    )
    parser.add_argument(
        "--glacier", type=_value_list, default=[GLACIER], help="mask values of glacier"
    )
    parser.add_argument("--acquired", help="acquisition date of every chip, YYYY-MM-DD")
    parser.add_argument("--acquired-pattern", help="regex whose first group is the date in a name")
    parser.add_argument("--acquired-format", default="%Y-%m-%d", help="strptime format of it")
    parser.add_argument("--on-bad-chip", choices=["skip", "error"], default="skip")
    parser.add_argument(
        "--threshold", type=float, default=None, help="default: the checkpoints' threshold"
    )
    parser.add_argument("--csv", default="chip_scores.csv", help="per-chip scores (CSV)")
    parser.add_argument("--json", default=None, help="also write the pooled result as JSON")
    parser.add_argument("--label", default="chips", help="dataset name stored in the outputs")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--dem", help="DEM raster (any CRS) for checkpoints with elevation or slope channels"
    )
    parser.set_defaults(func=evaluate_chips_command)
