"""Sub-commands ``evaluate``, ``baseline-fit`` and ``baseline-predict``."""

from __future__ import annotations

import argparse

from glaciermap.evaluation.baseline import fit_baseline, predict_baseline
from glaciermap.evaluation.metrics import evaluate_prediction


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
    p.set_defaults(
        func=lambda a: fit_baseline(a.train, a.out, val_tiles=a.val, max_rules=a.max_rules)
    )

    p = subparsers.add_parser(
        "baseline-predict", help="apply the threshold baseline to a scene, write a mask GeoTIFF"
    )
    p.add_argument("--model", required=True, help="baseline JSON from baseline-fit")
    p.add_argument("--scene", required=True, help="results/scenes/{date}.tif")
    p.add_argument("--out", required=True, help="output mask GeoTIFF")
    p.set_defaults(func=lambda a: predict_baseline(a.model, a.scene, a.out))
