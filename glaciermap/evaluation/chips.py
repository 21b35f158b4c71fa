"""Scores of a model, an ensemble or the threshold baseline on a labelled chip dataset.

Each chip is predicted whole (chips are small): its channels go through
:meth:`glaciermap.models.ensemble.CheckpointEnsemble.probability`, which pads them
as for any scene; several checkpoints give their mean probability. Pixels where
the image has no data or the label is unknown (255 in the chip's labels:
nodata, an ignore value, the mask's nodata tag unless it is a class value)
count nowhere. The counts are pooled over all chips; per-chip scores go to a
CSV. The mask values found are reported with how they were read, and a pooled
set whose reference lacks a class is reported with a warning and undefined
(None) ratios.

The workflow's rules ``evaluate_chips*`` and the command ``glaciermap
evaluate-chips`` call the same :func:`score_chips`, so both give the same counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glaciermap.bands import BANDS
from glaciermap.channels import SPECTRAL, needs_dem, spectral_bands
from glaciermap.data.chip_dataset import ChipDataset, image_files
from glaciermap.data.chips import Chip, MaskReading, SkippedChip, iter_chips
from glaciermap.errors import InputDataError
from glaciermap.evaluation.baseline import apply_rules, band_features, load_baseline
from glaciermap.evaluation.metrics import ConfusionCounts, confusion_counts
from glaciermap.labels import NODATA
from glaciermap.models.ensemble import CheckpointEnsemble
from glaciermap.utils.atomic import atomic_path, write_text_atomic
from glaciermap.utils.progress import track

log = logging.getLogger(__name__)

ChipPredictor = Callable[[Chip], np.ndarray]  # (H, W) bool glacier
SCORE_COLUMNS = ("tp", "fp", "fn", "tn", "n_pixels", "f1", "iou", "precision", "recall")
CSV_COLUMNS = ("image", "mask", "status", "reason", *SCORE_COLUMNS)


class BaselinePredictor:
    """The threshold baseline's rules, applied to a chip's bands."""

    def __init__(self, rules_json: str | Path) -> None:
        self.rules, self.channels = load_baseline(rules_json)

    def __call__(self, chip: Chip) -> np.ndarray:
        values = np.nan_to_num(chip.bands, nan=0.0)
        return apply_rules(self.rules, band_features(values, self.channels))


@dataclass
class ChipScores:
    """Pooled counts over the scored chips, and one row per chip (skipped ones too)."""

    pooled: ConfusionCounts = field(default_factory=ConfusionCounts)
    rows: list[dict[str, Any]] = field(default_factory=list)
    reading: MaskReading = field(default_factory=MaskReading)

    @property
    def n_chips(self) -> int:
        return sum(row["status"] == "scored" for row in self.rows)

    @property
    def skipped(self) -> list[dict[str, str]]:
        return [
            {"image": row["image"], "reason": row["reason"]}
            for row in self.rows
            if row["status"] == "skipped"
        ]


def chip_prediction(chip: Chip, glacier: np.ndarray) -> np.ndarray:
    """uint8 predicted mask of a chip: 1 / 0, 255 where the image has no data."""
    if glacier.shape != chip.labels.shape:
        raise ValueError(f"prediction {glacier.shape} for a chip of {chip.labels.shape}")
    predicted = glacier.astype(np.uint8)
    predicted[~chip.image_valid] = NODATA
    return predicted


def score_chips(
    dataset: ChipDataset,
    images: Sequence[str | Path],
    predict: ChipPredictor,
    base_dir: str | Path = ".",
) -> ChipScores:
    """Predict every usable chip of ``images`` and count against its labels."""
    scores = ChipScores()
    chips = iter_chips(dataset, images, base_dir)
    for item in track(chips, len(images), f"chips {dataset.label}", "chip"):
        mask = str(item.files.mask or (dataset.outlines or {}).get("file", ""))
        row: dict[str, Any] = {"image": str(item.files.image), "mask": mask}
        if isinstance(item, SkippedChip):
            scores.rows.append({**row, "status": "skipped", "reason": item.reason})
            continue
        counts = confusion_counts(chip_prediction(item, predict(item)), item.labels)
        scores.pooled += counts
        if item.reading is not None:
            scores.reading.add(item.reading)
        scores.rows.append({**row, "status": "scored", "reason": "", **counts.to_dict()})
    if scores.n_chips == 0:
        raise InputDataError(
            f"chip dataset '{dataset.label}' ({dataset.key('images')}): no usable chip "
            "(see the log for the reasons)"
        )
    return scores


def write_chip_scores(
    scores: ChipScores,
    dataset: ChipDataset,
    out_json: str | Path | None,
    out_csv: str | Path | None,
    run: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The evaluation JSON (``results/eval/{run}/chips/{label}.json``) and the CSV."""
    result: dict[str, Any] = {
        "run": run,
        "chips": dataset.label,
        "images": dataset.images,
        **dict(extra or {}),
        "n_chips": scores.n_chips,
        "n_skipped": len(scores.skipped),
        "skipped": scores.skipped,
        "pooled": scores.pooled.to_dict(),
        "per_chip": str(out_csv) if out_csv is not None else None,
    }
    if dataset.masks is not None:
        result["labels"] = scores.reading.describe(dataset)
        log.info("chips %s: %s", dataset.label, result["labels"])
    warnings = scores.pooled.class_warnings()
    if warnings:
        result["warnings"] = warnings
    for warning in warnings:
        log.warning("chips %s (%s): %s", dataset.label, dataset.images, warning)
    if out_csv is not None:
        with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(scores.rows)
    if out_json is not None:
        write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    pooled = result["pooled"]
    log.info(
        "%s on chips %s: F1 %s over %d pixels of %d chips (%d skipped)",
        run,
        dataset.label,
        "undefined" if pooled["f1"] is None else f"{pooled['f1']:.4f}",
        pooled["n_pixels"],
        scores.n_chips,
        len(scores.skipped),
    )
    return result


def evaluate_chips_checkpoints(
    checkpoints: Sequence[str | Path],
    dataset_settings: Mapping[str, Any],
    label: str,
    images: Sequence[str | Path],
    out_json: str | Path,
    out_csv: str | Path,
    run: str,
    threshold: float | None = None,
    device: str = "auto",
    dem: Mapping[str, Any] | None = None,
    fold_inventory: str | Path | None = None,
    folds: int | None = None,
) -> dict[str, Any]:
    """Rules ``evaluate_chips`` (one run) and ``evaluate_chips_ensemble`` (its seeds);
    the chips give the checkpoints' channels (terrain from ``dem``, ``data.dem``).

    With ``fold_inventory`` (a fold's ``chips.csv`` of a ``split: kfold`` dataset) only
    the fold's test chips are scored, out of fold: the JSON then carries ``fold``,
    ``folds`` and ``out_of_fold: true``, which Table 3 pools over the folds.
    """
    extra: dict[str, Any] = {}
    if fold_inventory is not None:
        images, fold = fold_test_images(fold_inventory, images)
        extra = {"out_of_fold": True, "fold": fold, "folds": folds}
    model = CheckpointEnsemble(checkpoints, device, threshold)
    dataset = ChipDataset.from_config(label, dataset_settings, model.bands, dem)
    scores = score_chips(dataset, images, model)
    extra = {**model.describe(), **extra}
    return write_chip_scores(scores, dataset, out_json, out_csv, run, extra)


def fold_test_images(
    inventory: str | Path, images: Sequence[str | Path]
) -> tuple[list[str | Path], int]:
    """The ``images`` that a fold's inventory lists as its test chips, and the fold."""
    with open(inventory, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("split") == "test"]
    tested = {str(Path(row["image"])) for row in rows}
    folds = {row["fold"] for row in rows}
    if not tested or len(folds) != 1:
        raise InputDataError(f"fold inventory {inventory}: no test chips of one fold")
    return [image for image in images if str(Path(image)) in tested], int(folds.pop())


def evaluate_chips_baseline(
    rules_json: str | Path,
    dataset_settings: Mapping[str, Any],
    label: str,
    images: Sequence[str | Path],
    out_json: str | Path,
    out_csv: str | Path,
    run: str,
    dem: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rule ``evaluate_chips_baseline``: the threshold baseline on a chip dataset."""
    baseline = BaselinePredictor(rules_json)
    dataset = ChipDataset.from_config(label, dataset_settings, baseline.channels, dem)
    scores = score_chips(dataset, images, baseline)
    return write_chip_scores(scores, dataset, out_json, out_csv, run, {"rules": str(rules_json)})


# ---------------------------------------------------------------- command line

EVALUATE_CHIPS_DESCRIPTION = """\
Score one or more checkpoints (several: their mean probability, like an
ensemble) on a folder of labelled chips the workflow never saw. Each image
--images matches is predicted whole; its mask is --masks with {stem} (the
image's file name without extension), or --outlines rasterised onto it. Mask
values --glacier are glacier, --not-glacier not glacier, --ignore no label; any
other value is an error. A mask file's nodata tag is no label unless it is a
glacier or not-glacier value (then it is read as that class, and said so).
Image pixels equal to --nodata count nowhere. Prints the mask values found and
how they were read, pooled F1, IoU, precision and recall (undefined, with a
warning, where the reference lacks a class), and writes per-chip scores to --out
(CSV).

example:
  glaciermap evaluate-chips --checkpoint results/runs/<run>/best.pt \\
      --images 'chips/img/*.tif' --masks 'chips/mask/{stem}.tif' \\
      --bands blue=2,green=3,red=4,nir=8 --scale 0.0001 --nodata 0 --ignore 255
"""


def parse_band_indices(spec: str, needed: Sequence[str] = BANDS) -> dict[str, int]:
    """``blue=1,green=2,red=3,nir=4`` -> band indices in each chip file; the
    spectral bands ``needed`` (the checkpoint's) must be there."""
    bands: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, index = part.partition("=")
        if not sep or name not in SPECTRAL or not index.strip().isdigit() or int(index) < 1:
            raise InputDataError(
                f"--bands: {part!r} is not NAME=INDEX with NAME one of {', '.join(SPECTRAL)}"
            )
        bands[name] = int(index)
    missing = [name for name in needed if name not in bands]
    if missing:
        raise InputDataError(f"--bands: {', '.join(missing)} missing from {spec!r}")
    return bands


def dataset_from_args(args: argparse.Namespace, channels: Sequence[str] = BANDS) -> ChipDataset:
    outlines = None
    if args.outlines:
        outlines = {"file": args.outlines, "format": args.outlines_format, "layer": None}
    acquired: str | dict[str, str] | None = args.acquired
    if args.acquired_pattern:
        acquired = {"pattern": args.acquired_pattern, "format": args.acquired_format}
    return ChipDataset(
        label=args.label,
        images=args.images,
        split="test",  # the command scores a test set
        masks=args.masks,
        outlines=outlines,
        bands=parse_band_indices(args.bands, spectral_bands(channels)),
        product=args.product,
        processing_baseline=args.processing_baseline,
        scale=args.scale,
        offset=args.offset,
        nodata=args.nodata,
        glacier=tuple(args.glacier),
        not_glacier=tuple(args.not_glacier),
        ignore=tuple(args.ignore),
        acquired=acquired,
        on_bad_chip=args.on_bad_chip,
        origin="cli",
        channels=tuple(channels),
        dem={"file": args.dem} if getattr(args, "dem", None) and needs_dem(channels) else None,
    )


def evaluate_chips_command(args: argparse.Namespace) -> None:
    model = CheckpointEnsemble(args.checkpoint, args.device, args.threshold)
    dataset = dataset_from_args(args, model.bands)
    scores = score_chips(dataset, image_files(dataset), model)
    extra = model.describe()
    result = write_chip_scores(scores, dataset, args.json, args.out, ",".join(model.paths), extra)
    pooled = result["pooled"]
    if "labels" in result:
        print(result["labels"])
    for warning in result.get("warnings", []):
        print(f"WARNING: {warning}")
    for name, label in (
        ("f1", "F1"),
        ("iou", "IoU"),
        ("precision", "precision"),
        ("recall", "recall"),
    ):
        value = pooled[name]
        print(f"{label} {'undefined (0/0)' if value is None else f'{value:.3f}'}")
    print(
        f"{result['n_chips']} chips, {pooled['n_pixels']} pixels scored (tp {pooled['tp']}, "
        f"fp {pooled['fp']}, fn {pooled['fn']}, tn {pooled['tn']}); "
        f"{result['n_skipped']} skipped; per chip: {args.out}"
    )
