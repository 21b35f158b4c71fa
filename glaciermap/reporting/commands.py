"""Sub-commands ``table``, ``table3``, ``figure-curves`` and ``figure-overlay``."""

from __future__ import annotations

import argparse

from glaciermap.reporting import figures, tables

SELECTION_TABLES = {
    "models": tables.build_table1,
    "hparams": tables.build_table2,
    "augmentation": tables.build_table_augmentation,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "table", help="selection table (Table 1, Table 2 or augmentation) from runs' metrics.json"
    )
    p.add_argument("kind", choices=sorted(SELECTION_TABLES), help="which stage's table")
    p.add_argument("--metrics", nargs="+", required=True, help="runs' metrics.json files")
    p.add_argument("--baseline", required=True, help="threshold baseline JSON (baseline-fit)")
    p.add_argument(
        "--out", required=True, help="output CSV; its .md and .html twins are written next to it"
    )
    p.set_defaults(func=lambda a: SELECTION_TABLES[a.kind](a.metrics, a.baseline, a.out))

    p = subparsers.add_parser("table3", help="Table 3 from the final runs' evaluation JSONs")
    p.add_argument(
        "--evals",
        nargs="+",
        required=True,
        help="final runs' scores (results/eval/{run}/{date}.json)",
    )
    p.add_argument(
        "--baseline",
        nargs="+",
        required=True,
        help="baseline scores (results/eval/baseline/{dates}/{date}.json)",
    )
    p.add_argument(
        "--out", required=True, help="output CSV (results/table3.csv; .md and .html twins)"
    )
    p.add_argument(
        "--out-long", required=True, help="long-form CSV (results/table3_long.csv; twins too)"
    )
    p.add_argument(
        "--external",
        nargs="*",
        default=[],
        help="results/eval/{run}/chips/{label}.json of the external chip test sets",
    )
    p.set_defaults(
        func=lambda a: tables.build_table3(a.evals, a.baseline, a.out, a.out_long, a.external)
    )

    p = subparsers.add_parser(
        "figure-curves", help="loss and F1 per epoch of some runs (Figures 2, 3, 4)"
    )
    p.add_argument("--metrics", nargs="+", required=True, help="runs' metrics.json files")
    p.add_argument(
        "--group-by",
        default="model",
        choices=["model", "hparams", "aug", "dates"],
        help="one colour per value of this part of the run name",
    )
    p.add_argument("--title", help="figure title (default: none)")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(
        func=lambda a: figures.figure_training_curves(a.metrics, a.out, a.group_by, a.title)
    )

    p = subparsers.add_parser(
        "figure-overlay", help="prediction over the RGB image of one region (Figures 5-8)"
    )
    p.add_argument("--scene", required=True, help="prepared scene (results/scenes/{date}.tif)")
    p.add_argument("--probability", required=True, help="results/maps/{run}/{date}/probability.tif")
    p.add_argument("--reference", required=True, help="reference mask (results/masks/{date}.tif)")
    p.add_argument("--regions", required=True, help="split raster (results/regions.tif)")
    p.add_argument(
        "--region", default="test", choices=["train", "val", "test"], help="region drawn"
    )
    p.add_argument("--mask", help="predicted mask.tif (default: probability >= --threshold)")
    p.add_argument(
        "--threshold", type=float, default=0.5, help="glacier probability threshold, 0-1"
    )
    p.add_argument("--title", help="figure title (default: none)")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(
        func=lambda a: figures.figure_overlay(
            a.scene,
            a.probability,
            a.reference,
            a.regions,
            a.out,
            region=a.region,
            mask_tif=a.mask,
            threshold=a.threshold,
            title=a.title,
        )
    )
