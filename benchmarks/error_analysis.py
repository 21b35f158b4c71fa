"""Where a map's errors lie: false positives and negatives by kind of pixel, and a picture.

Reads a finished workflow's ``results/`` (scene, reference mask, regions) and
one predicted ``mask.tif`` (a run's or a seed ensemble's), and for one region
(``test`` or ``val``) counts the false positives (FP) and negatives (FN) in
four kinds of pixel, each pixel in the first that applies:

- ``outline band``: within ``--band`` pixels of the reference outline, where an
  outline drawn on another date than the scene, or a pixel half glacier, is
  as likely as a model error;
- ``saturated``: blue, green and red all at the top of the scene's range
  (8-bit display values clip snow and bright ice alike);
- ``dark``: mean visible reflectance below ``--dark`` (debris, rock, shadow);
- ``other``.

It prints the F1 the map would have if one kind's errors were removed (the
ceiling each source of error sets) and writes a confusion picture over the
region (glacier found light blue, false positive red, false negative magenta,
right background dark grey; km axes with the EPSG code and a scale bar).
Example (the demo's ensemble on its test glacier)::

    ENSEMBLE=results/maps/ensemble/deeplabv3plus/dropout0.4-softmax-mean/oct2000/noaug
    python benchmarks/error_analysis.py --results results --mask $ENSEMBLE/oct2000/mask.tif \\
        --date oct2000 --region test --png docs/img/demo_errors_test.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import ndimage

from glaciermap.bands import BLUE, GREEN, RED
from glaciermap.evaluation.metrics import REGION_CODES
from glaciermap.labels import GLACIER, NODATA
from glaciermap.reporting.map_axes import map_axes

TRUE_POSITIVE = (0.55, 0.8, 1.0)
FALSE_POSITIVE = (0.9, 0.1, 0.1)
FALSE_NEGATIVE = (0.8, 0.1, 0.8)
TRUE_NEGATIVE = (0.3, 0.3, 0.3)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read()


def kinds(scene: np.ndarray, reference: np.ndarray, band: int, dark: float) -> dict:
    """Boolean masks of the four kinds of pixel (first that applies)."""
    glacier = reference == GLACIER
    edge = ndimage.binary_dilation(glacier, iterations=band) & ~ndimage.binary_erosion(
        glacier, iterations=band
    )
    visible = scene[[BLUE, GREEN, RED]]
    top = np.nanmax(visible)
    saturated = (visible >= top - 1e-6).all(axis=0) & ~edge
    shadowed = (np.nanmean(visible, axis=0) < dark) & ~edge & ~saturated
    return {
        f"outline band (<= {band} px)": edge,
        "saturated RGB": saturated,
        f"dark (mean RGB < {dark:g})": shadowed,
        "other": ~edge & ~saturated & ~shadowed,
    }


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--mask", type=Path, required=True, help="a predicted mask.tif")
    parser.add_argument("--date", required=True)
    parser.add_argument("--region", choices=["test", "val"], default="test")
    parser.add_argument("--band", type=int, default=2, help="outline band, pixels")
    parser.add_argument("--dark", type=float, default=0.5, help="mean RGB below this is dark")
    parser.add_argument("--png", type=Path, help="write the confusion picture here")
    args = parser.parse_args()
    scene = read(args.results / "scenes" / f"{args.date}.tif").astype(np.float32)
    reference = read(args.results / "masks" / f"{args.date}.tif")[0]
    inside = read(args.results / "regions.tif")[0] == REGION_CODES[args.region]
    predicted = read(args.mask)[0]
    scored = inside & (reference != NODATA) & (predicted != NODATA)
    truth, guess = reference == GLACIER, predicted == GLACIER
    tp, fp, fn = (scored & truth & guess), (scored & ~truth & guess), (scored & truth & ~guess)
    counts = [int(a.sum()) for a in (tp, fp, fn)]
    print(f"{args.mask}, {args.region} region: F1 {f1(*counts):.3f} (tp {counts[0]}, "
          f"fp {counts[1]}, fn {counts[2]})\n")  # fmt: skip
    print("| kind of pixel | FP | FN | F1 if its errors were removed |\n|---|---:|---:|---:|")
    for name, where in kinds(scene, reference, args.band, args.dark).items():
        n_fp, n_fn = int((fp & where).sum()), int((fn & where).sum())
        fixed = f1(counts[0] + n_fn, counts[1] - n_fp, counts[2] - n_fn)
        print(f"| {name} | {n_fp} | {n_fn} | {fixed:.3f} |")
    if args.png:
        rows, cols = np.nonzero(inside)
        box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        picture = np.full((*inside[box].shape, 3), TRUE_NEGATIVE)
        picture[tp[box]] = TRUE_POSITIVE
        picture[fp[box]] = FALSE_POSITIVE
        picture[fn[box]] = FALSE_NEGATIVE
        picture[~inside[box]] = (0.0, 0.0, 0.0)
        with rasterio.open(args.mask) as dataset:
            window = rasterio.windows.Window(
                cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1
            )
            left, bottom, right, top = rasterio.windows.bounds(window, dataset.transform)
            crs = dataset.crs
        figure = Figure(figsize=(8, 8 * picture.shape[0] / picture.shape[1] + 0.9))
        axes = figure.subplots()
        axes.imshow(picture, interpolation="nearest", extent=(left, right, bottom, top))
        map_axes(axes, crs, data_units_per_km=1000.0)
        axes.legend(
            handles=[
                Patch(color=TRUE_POSITIVE, label="glacier, found"),
                Patch(color=FALSE_POSITIVE, label="false positive"),
                Patch(color=FALSE_NEGATIVE, label="false negative"),
                Patch(color=TRUE_NEGATIVE, label="not glacier, right"),
            ],
            loc="lower right",
            fontsize=8,
        )
        axes.set_title(f"{args.region} region, {args.date}: F1 {f1(*counts):.3f}", fontsize=10)
        figure.tight_layout()
        args.png.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.png, dpi=110)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
