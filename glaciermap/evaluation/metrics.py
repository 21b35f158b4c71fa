"""Pixel metrics of a predicted glacier mask against the reference mask.

Counts are taken only where both masks hold data (not ``NODATA`` = 255) and,
when evaluating a scene, only inside one region of ``results/regions.tif``.
Scores whose denominator is zero are defined so that agreeing on "no glacier
here" is perfect and missing everything scores zero (see :func:`safe_ratio`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from glaciermap.errors import InputDataError
from glaciermap.labels import NODATA
from glaciermap.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

# Codes of results/regions.tif (docs/architecture.md).
REGION_CODES = {"train": 1, "val": 2, "test": 3}
# val: whole-map scores for choosing inference settings without touching the test region.
EVALUATED_REGIONS = ("test", "val", "train")


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of a binary comparison (positive = glacier)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def n_pixels(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def scores(self) -> dict[str, float | None]:
        """F1, IoU, precision and recall; all None when no pixel was compared."""
        if self.n_pixels == 0:
            return {"f1": None, "iou": None, "precision": None, "recall": None}
        tp, fp, fn = self.tp, self.fp, self.fn
        empty = tp + fp + fn == 0  # neither mask has glacier: perfect agreement
        return {
            "f1": safe_ratio(2 * tp, 2 * tp + fp + fn, empty),
            "iou": safe_ratio(tp, tp + fp + fn, empty),
            "precision": safe_ratio(tp, tp + fp, empty),
            "recall": safe_ratio(tp, tp + fn, empty),
        }

    def to_dict(self) -> dict[str, Any]:
        counts = {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}
        return {**counts, "n_pixels": self.n_pixels, **self.scores()}


def safe_ratio(numerator: int, denominator: int, empty: bool) -> float:
    """``numerator / denominator``; a zero denominator gives 1.0 if ``empty`` else 0.0.

    ``empty`` says that neither mask has any glacier pixel: then precision,
    recall, F1 and IoU are all 1 (nothing to find, nothing found). Otherwise a
    zero denominator means e.g. no predicted glacier while the reference has
    some (precision 0/0): the prediction found nothing, so the score is 0.
    """
    if denominator == 0:
        return 1.0 if empty else 0.0
    return numerator / denominator


def confusion_counts(
    pred: np.ndarray, ref: np.ndarray, where: np.ndarray | None = None
) -> ConfusionCounts:
    """Count tp/fp/fn/tn of ``pred`` against ``ref`` (0/1 arrays, 255 = nodata).

    Pixels where either array is nodata, or ``where`` is False, are ignored.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape}, reference {ref.shape}")
    valid = (pred != NODATA) & (ref != NODATA)
    if where is not None:
        valid &= where
    p = pred[valid].astype(bool)
    r = ref[valid].astype(bool)
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p & ~r))
    fn = int(np.count_nonzero(~p & r))
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=int(p.size) - tp - fp - fn)


def check_same_grid(paths: list[Path]) -> None:
    """Raise InputDataError naming the first raster whose CRS, transform or shape differ."""
    grids = []
    for path in paths:
        try:
            with rasterio.open(path) as src:
                grids.append((src.crs, src.transform, src.shape))
        except rasterio.errors.RasterioIOError as exc:
            raise InputDataError(f"cannot open raster {path}: {exc}") from exc
    for path, grid in zip(paths[1:], grids[1:], strict=True):
        if grid != grids[0]:
            raise InputDataError(
                f"{path} is not on the grid of {paths[0]} "
                f"(crs/transform/shape {grid} vs {grids[0]})"
            )


def _row_windows(height: int, width: int, rows: int) -> Iterator[Window]:
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def region_counts(
    pred_mask_tif: str | Path,
    ref_mask_tif: str | Path,
    regions_tif: str | Path,
    regions: tuple[str, ...] = EVALUATED_REGIONS,
    block_rows: int = 1024,
) -> dict[str, ConfusionCounts]:
    """Confusion counts per named region, reading the three rasters in row blocks."""
    paths = [Path(pred_mask_tif), Path(ref_mask_tif), Path(regions_tif)]
    check_same_grid(paths)
    totals = {name: ConfusionCounts() for name in regions}
    with (
        rasterio.open(paths[0]) as pred_src,
        rasterio.open(paths[1]) as ref_src,
        rasterio.open(paths[2]) as reg_src,
    ):
        for window in _row_windows(pred_src.height, pred_src.width, block_rows):
            pred = pred_src.read(1, window=window)
            ref = ref_src.read(1, window=window)
            codes = reg_src.read(1, window=window)
            for name in regions:
                totals[name] += confusion_counts(pred, ref, codes == REGION_CODES[name])
    return totals


def evaluate_prediction(
    pred_mask_tif: str | Path,
    ref_mask_tif: str | Path,
    regions_tif: str | Path,
    out_json: str | Path | None = None,
    run: str | None = None,
    date: str | None = None,
    members: int | None = None,
) -> dict[str, Any]:
    """Compare a predicted mask with the reference in the test, validation and train regions.

    Inputs are ``results/maps/{run}/{date}/mask.tif`` (uint8 0/1, 255 nodata),
    ``results/masks/{date}.tif`` and ``results/regions.tif`` on one grid.
    Returns (and, when ``out_json`` is given, writes atomically) the
    ``results/eval/{run}/{date}.json`` content::

        {"run", "date", "prediction", "reference", "regions",
         "test": {"tp", "fp", "fn", "tn", "n_pixels", "f1", "iou", "precision", "recall"},
         "val": {...same keys}, "train": {...same keys}}

    plus ``n_members`` for a seed ensemble's mask (``members``). Scores are None
    for a region without compared pixels.
    """
    counts = region_counts(pred_mask_tif, ref_mask_tif, regions_tif)
    result: dict[str, Any] = {
        "run": run,
        "date": date,
        "prediction": str(pred_mask_tif),
        "reference": str(ref_mask_tif),
        "regions": str(regions_tif),
    }
    if members is not None:
        result["n_members"] = int(members)
    for name, region in counts.items():
        result[name] = region.to_dict()
        if region.n_pixels == 0:
            log.warning("no valid pixel of region %s in %s", name, pred_mask_tif)
        else:
            log.info("%s region: F1 %.4f over %d pixels", name, result[name]["f1"], region.n_pixels)
    if out_json is not None:
        write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    return result
