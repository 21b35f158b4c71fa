"""Do large inference windows change the maps? Validation and test F1, and probability,
against small windows.

For each checkpoint of a finished workflow run, maps the scene with the
reference setting (``--reference``, by default the training tile size with a
half-window margin: the old ``overlap: 0.5``) and with each ``--settings``
WINDOW/MARGIN, then reports per setting the validation- and test-region F1 (as
``glaciermap evaluate`` scores them; choose on validation), the test F1's
difference to the reference, the mean and largest
absolute probability difference over valid pixels and the share of mask pixels
that flip. With ``--baseline-maps`` the reference maps are also compared with
maps made before (e.g. by an older version). Example on the demo::

    python benchmarks/window_agreement.py --results /work/main/results \\
        --checkpoints 'runs/pspnet/*/oct2000/noaug/seed*/best.pt' --date oct2000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch

from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.inference.maps import predict_scene_maps

DEFAULT_SETTINGS = ("128/32", "256/32", "256/64", "512/32", "512/64", "512/128", "1024/64")


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(1)


def compare(probability: Path, reference_probability: Path) -> dict[str, float]:
    """Mean and max |dp| over pixels valid in both, and the share of flipped mask pixels."""
    p, q = read(probability).astype(np.float64), read(reference_probability).astype(np.float64)
    valid = np.isfinite(p) & np.isfinite(q)
    diff = np.abs(p - q)[valid]
    flipped = (p[valid] >= 0.5) != (q[valid] >= 0.5)
    return {"mean_dp": diff.mean(), "max_dp": diff.max(), "flipped": flipped.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a workflow's results/")
    parser.add_argument("--checkpoints", required=True, help="glob under --results")
    parser.add_argument("--date", required=True)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--reference", help="WINDOW/MARGIN (default: tile/tile-half)")
    parser.add_argument("--blend", default="gaussian")
    parser.add_argument("--baseline-maps", help="maps/{run}/{date} made before, under --results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = args.results / "scenes" / f"{args.date}.tif"
    reference_mask = args.results / "masks" / f"{args.date}.tif"
    regions = args.results / "regions.tif"
    checkpoints = sorted(args.results.glob(args.checkpoints))
    if not checkpoints:
        raise SystemExit(f"no checkpoint matches {args.results / args.checkpoints}")
    rows: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for i, checkpoint in enumerate(checkpoints):
            tile = int(torch.load(checkpoint, weights_only=True)["tile_size"])
            reference = args.reference or f"{tile}/{tile // 2}"
            run = checkpoint.parent.relative_to(args.results / "runs")
            print(f"{run}: training tiles {tile} px, reference {reference}", flush=True)
            scores = {}
            for setting in [reference, *args.settings]:
                window, margin = (int(v) for v in setting.split("/"))
                folder = out / str(i) / setting.replace("/", "-")
                inference = {"window": window, "margin": margin, "blend": args.blend}
                predict_scene_maps(
                    checkpoint,
                    scene,
                    folder / "probability.tif",
                    folder / "mask.tif",
                    {**inference, "batch_size": 4 if window >= 256 else 32},
                    "cpu",
                )
                scored = evaluate_prediction(folder / "mask.tif", reference_mask, regions)
                scores[setting] = (folder, scored["test"]["f1"], scored["val"]["f1"])
            ref_folder, ref_f1, ref_val = scores[reference]
            rows.setdefault(reference, []).append(
                {"mean_dp": 0.0, "max_dp": 0.0, "flipped": 0.0, "f1": ref_f1, "df1": 0.0,
                 "val_f1": ref_val}
            )  # fmt: skip
            if args.baseline_maps:
                before = args.results / args.baseline_maps.format(run=run, date=args.date)
                same = compare(ref_folder / "probability.tif", before / "probability.tif")
                before_f1 = evaluate_prediction(before / "mask.tif", reference_mask, regions)
                print(
                    f"  reference vs maps made before: mean |dp| {same['mean_dp']:.2e}, "
                    f"max {same['max_dp']:.2e}, F1 {ref_f1:.4f} vs {before_f1['test']['f1']:.4f}"
                )
            for setting in args.settings:
                folder, f1, val_f1 = scores[setting]
                row = compare(folder / "probability.tif", ref_folder / "probability.tif")
                row.update(f1=f1, df1=f1 - ref_f1, val_f1=val_f1)
                rows.setdefault(setting, []).append(row)
                print(
                    f"  {setting:>9}: F1 {f1:.4f} (ref {ref_f1:.4f}, diff {f1 - ref_f1:+.4f}), "
                    f"mean |dp| {row['mean_dp']:.4f}, max {row['max_dp']:.3f}, "
                    f"mask flipped {row['flipped']:.2%}",
                    flush=True,
                )
    print(f"\nmean over {len(checkpoints)} checkpoints (window/margin px):\n")
    print(
        "| window/margin | val F1 | test F1 | test F1 diff | mean abs(dp) | max abs(dp) "
        "| mask pixels flipped |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for setting, values in rows.items():

        def mean(key: str, values=values) -> float:
            return statistics.fmean(v[key] for v in values)

        print(
            f"| {setting} | {mean('val_f1'):.3f} | {mean('f1'):.3f} | {mean('df1'):+.4f} | "
            f"{mean('mean_dp'):.4f} | "
            f"{max(v['max_dp'] for v in values):.3f} | {mean('flipped'):.2%} |"
        )


if __name__ == "__main__":
    main()
