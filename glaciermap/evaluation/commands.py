"""Sub-commands ``evaluate``, ``baseline-fit``, ``baseline-predict`` and ``evaluate-chips``."""

from __future__ import annotations

import argparse

from glaciermap.bands import band_index_spec
from glaciermap.evaluation.baseline import fit_baseline, predict_baseline
from glaciermap.evaluation.chips import EVALUATE_CHIPS_DESCRIPTION, evaluate_chips_command
from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER
from glaciermap.utils.cli_options import add_option, add_radiometry

EVALUATE_EXAMPLE = """\
example:
  glaciermap evaluate --prediction results/maps/<run>/oct2000/mask.tif \\
      --reference results/masks/oct2000.tif --regions results/regions.tif \\
      --out eval.json --run <run> --date oct2000
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="F1/IoU/precision/recall of a predicted mask in the test and train regions",
        description="Score a predicted mask against the reference mask, pixel by pixel, in\n"
        "each region of the split (nodata of either counts nowhere); writes a JSON.",
        epilog=EVALUATE_EXAMPLE,
    )
    p.add_argument("--prediction", required=True, help="predicted mask.tif (0/1, 255 nodata)")
    p.add_argument("--reference", required=True, help="reference mask (results/masks/{date}.tif)")
    p.add_argument("--regions", required=True, help="split raster (results/regions.tif)")
    p.add_argument("--out", required=True, help="output JSON (results/eval/{run}/{date}.json)")
    p.add_argument("--run", help="run label stored in the JSON (default: none)")
    p.add_argument("--date", help="date label stored in the JSON (default: none)")
    p.set_defaults(
        func=lambda a: evaluate_prediction(
            a.prediction, a.reference, a.regions, a.out, run=a.run, date=a.date
        )
    )

    p = subparsers.add_parser(
        "baseline-fit", help="fit the per-band threshold baseline on training tiles"
    )
    p.add_argument(
        "--train", nargs="+", required=True, help="training tiles (results/tiles/{date}/train.npz)"
    )
    p.add_argument(
        "--val", nargs="*", default=[], help="validation tiles (results/tiles/{date}/val.npz)"
    )
    p.add_argument("--out", required=True, help="output JSON with the fitted rules")
    p.add_argument("--max-rules", type=int, default=3, help="most threshold rules")
    p.add_argument(
        "--channels",
        default="blue,green,red,nir",
        help="the tiles' channels, comma separated (data.channels)",
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
    p.add_argument("--scene", required=True, help="prepared scene (results/scenes/{date}.tif)")
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
    parser.add_argument(
        "--outlines-format",
        choices=["auto", "glims", "rgi"],
        default="auto",
        help="attribute layout of --outlines (auto: guessed from its columns)",
    )
    parser.add_argument(
        "--bands",
        default=band_index_spec(),
        help="NAME=INDEX in each chip file, comma separated",
    )
    add_radiometry(parser, "image DN marking nodata (default: none)")
    parser.add_argument(
        "--ignore",
        type=_value_list,
        default=[NODATA],
        metavar="VALUES",
        help="mask values with no label, comma separated",
    )
    parser.add_argument(
        "--glacier",
        type=_value_list,
        default=[GLACIER],
        metavar="VALUES",
        help="mask values of glacier, comma separated",
    )
    parser.add_argument(
        "--not-glacier",
        type=_value_list,
        default=[NOT_GLACIER],
        metavar="VALUES",
        help="mask values of not glacier, comma separated; any value that is none of "
        "--glacier, --not-glacier or --ignore is an error",
    )
    parser.add_argument(
        "--acquired", help="acquisition date of every chip, YYYY-MM-DD (default: unknown)"
    )
    parser.add_argument(
        "--acquired-pattern",
        help="regex whose first group is the acquisition date in a chip's file name",
    )
    parser.add_argument(
        "--acquired-format",
        default="%Y-%m-%d",
        help="strptime format of the date --acquired-pattern finds",
    )
    parser.add_argument(
        "--on-bad-chip",
        choices=["skip", "error"],
        default="skip",
        help="an unreadable or unlabelled chip: left out with a warning, or an error",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="glacier probability threshold, 0-1 (default: the checkpoints' threshold)",
    )
    add_option(
        parser,
        "--out",
        deprecated=["--csv"],
        default="chip_scores.csv",
        help="per-chip scores (CSV)",
    )
    parser.add_argument(
        "--json", default=None, help="also write the pooled result as JSON (default: no JSON)"
    )
    parser.add_argument("--label", default="chips", help="dataset name stored in the outputs")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the model runs (auto: the GPU when there is one)",
    )
    parser.add_argument(
        "--dem", help="DEM raster (any CRS) for checkpoints with elevation or slope channels"
    )
    parser.set_defaults(func=evaluate_chips_command)
