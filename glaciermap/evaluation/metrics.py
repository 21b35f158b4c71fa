"""Pixel metrics of a predicted glacier mask against the reference mask.

Counts are taken only where both masks hold data (not ``NODATA`` = 255) and,
when evaluating a scene, only inside one region of ``results/regions.tif``.
A score whose denominator is zero is undefined: None in the JSON (NaN in
tables), never 1.0 or 0.0 from 0/0 (see :func:`safe_ratio`). A scored set whose
reference lacks one class (no glacier, or nothing but glacier) is reported with
a warning (:meth:`ConfusionCounts.class_warnings`): its ratios say little.
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
        """F1, IoU, precision and recall; None where the denominator is 0 (undefined)."""
        tp, fp, fn = self.tp, self.fp, self.fn
        return {
            "f1": safe_ratio(2 * tp, 2 * tp + fp + fn),
            "iou": safe_ratio(tp, tp + fp + fn),
            "precision": safe_ratio(tp, tp + fp),
            "recall": safe_ratio(tp, tp + fn),
        }

    def class_warnings(self) -> list[str]:
        """Why these counts cannot score a model: a class absent from the reference."""
        if self.n_pixels == 0:
            return ["no pixel was compared: every score is undefined"]
        warnings = []
        if self.tp + self.fn == 0:
            warnings.append(
                f"the reference has no glacier pixel among {self.n_pixels} compared: recall "
                "is undefined and F1/IoU/precision only count false positives"
            )
        if self.tn + self.fp == 0:
            warnings.append(
                f"the reference has no not-glacier pixel among {self.n_pixels} compared: "
                "false positives cannot occur, precision says nothing"
            )
        return warnings

    def to_dict(self) -> dict[str, Any]:
        counts = {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}
        return {**counts, "n_pixels": self.n_pixels, **self.scores()}


def safe_ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``; None (undefined) when the denominator is 0.

    0/0 is neither perfect nor zero: e.g. recall with no glacier in the
    reference has nothing to measure, and calling it 1.0 (or 0.0) would report
    a score that no pixel supports.
    """
    if denominator == 0:
        return None
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


def _read_rows(src: rasterio.io.DatasetReader, path: Path, window: Window) -> np.ndarray:
    try:
        return src.read(1, window=window)
    except rasterio.errors.RasterioError as exc:  # truncated or damaged
        raise InputDataError(f"cannot read raster {path}: {exc}") from exc


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
            pred, ref, codes = (
                _read_rows(src, path, window)
                for src, path in zip((pred_src, ref_src, reg_src), paths, strict=True)
            )
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
    where undefined (0/0, e.g. a region without compared pixels); a region whose
    reference lacks a class gets a ``warnings`` list and a logged warning.
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
        warnings = region.class_warnings()
        if warnings:
            result[name]["warnings"] = warnings
        for warning in warnings:
            log.warning("%s region of %s: %s", name, pred_mask_tif, warning)
        f1 = result[name]["f1"]
        log.info(
            "%s region: F1 %s over %d pixels",
            name,
            "undefined" if f1 is None else f"{f1:.4f}",
            region.n_pixels,
        )
    if out_json is not None:
        write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    return result
