"""The threshold baseline: the classic non-learning way to map clean ice.

A few rules ``feature >= t`` or ``feature <= t`` joined by AND, on the input
channels (any band, terrain channel or index of ``data.channels``) and band
indices derived from them, each threshold and direction chosen to maximise the
F1 on the training tiles: with SWIR the classic NDSI is among them. Rules are
added greedily while they raise the training F1. The fitted rules are a small
JSON file; applied to a whole scene by windows they give a georeferenced mask
evaluated exactly like a model's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from glaciermap.bands import BANDS
from glaciermap.channels import INDEX_BANDS, check_channels
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import confusion_counts
from glaciermap.inference.geotiff import cog_writer
from glaciermap.io.map_layers import MASK
from glaciermap.labels import NODATA
from glaciermap.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

FORMAT = "glaciermap-threshold-baseline/1"
# Channels first, then indices derived from them when their bands are there:
# NDWI separates ice/snow and water from rock and vegetation with visible and
# near-infrared bands; NDSI (needs swir16) separates snow and ice from clouds and
# rock. Features of the four default bands:
FEATURES = (*BANDS, "ndwi", "red_nir_ratio")
# Derived features, in this order, and the bands each needs.
DERIVED: dict[str, tuple[str, str]] = {
    "ndwi": INDEX_BANDS["ndwi"],
    "red_nir_ratio": ("red", "nir"),
    "ndsi": INDEX_BANDS["ndsi"],
}
N_CANDIDATES = 256  # thresholds tried per feature, at quantiles of its values
MAX_PIXELS = 1_000_000  # training pixels sampled; the F1 curve is smooth at this size
MIN_GAIN = 1e-4  # a rule is kept only if it raises the training F1 by this much


@dataclass(frozen=True)
class Rule:
    feature: str
    direction: str  # ">=" or "<="
    threshold: float

    def apply(self, features: dict[str, np.ndarray]) -> np.ndarray:
        values = features[self.feature]
        return values >= self.threshold if self.direction == ">=" else values <= self.threshold


def feature_names(channels: Sequence[str] = BANDS) -> tuple[str, ...]:
    """The features of ``channels``: each channel, then the derived ones their bands allow."""
    derived = [
        name
        for name, needs in DERIVED.items()
        if name not in channels and all(band in channels for band in needs)
    ]
    return (*channels, *derived)


def band_features(bands: np.ndarray, channels: Sequence[str] = BANDS) -> dict[str, np.ndarray]:
    """Features of (C, ...) values of ``channels``, each shaped like one band."""
    if len(channels) != bands.shape[0]:
        raise ValueError(f"{bands.shape[0]} bands for channels {list(channels)}")
    features = {name: bands[i].astype(np.float32) for i, name in enumerate(channels)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in feature_names(channels)[len(channels) :]:
            a, b = (features[band] for band in DERIVED[name])
            if name == "red_nir_ratio":
                value = np.where(b != 0, a / b, 0.0)
            else:
                value = np.where(a + b != 0, (a - b) / (a + b), 0.0)
            features[name] = value.astype(np.float32)
    return features


def apply_rules(rules: Sequence[Rule], features: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean glacier prediction: all rules hold."""
    result = np.ones(next(iter(features.values())).shape, dtype=bool)
    for rule in rules:
        result &= rule.apply(features)
    return result


def best_threshold(
    values: np.ndarray, labels: np.ndarray, total_positives: int
) -> tuple[float, str, float]:
    """Best (F1, direction, threshold) of one feature on the currently selected pixels.

    ``values``/``labels`` are the pixels that pass the rules chosen so far;
    ``total_positives`` counts glacier pixels over all training pixels, so the
    F1 is that of the whole rule set: F1 = 2 tp / (predicted positives + positives).
    """
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    cum_pos = np.concatenate([[0], np.cumsum(labels[order], dtype=np.int64)])
    n = values.size
    candidates = np.unique(np.quantile(sorted_values, np.linspace(0, 1, N_CANDIDATES)))
    # values >= t: pixels from the first index whose value is >= t
    lo = np.searchsorted(sorted_values, candidates, side="left")
    tp_ge = cum_pos[-1] - cum_pos[lo]
    f1_ge = 2 * tp_ge / np.maximum((n - lo) + total_positives, 1)
    # values <= t: pixels up to the last index whose value is <= t
    hi = np.searchsorted(sorted_values, candidates, side="right")
    tp_le = cum_pos[hi]
    f1_le = 2 * tp_le / np.maximum(hi + total_positives, 1)
    i_ge, i_le = int(np.argmax(f1_ge)), int(np.argmax(f1_le))
    if f1_ge[i_ge] >= f1_le[i_le]:
        return float(f1_ge[i_ge]), ">=", float(candidates[i_ge])
    return float(f1_le[i_le]), "<=", float(candidates[i_le])


def fit_rules(
    features: dict[str, np.ndarray], labels: np.ndarray, max_rules: int = 3
) -> tuple[list[Rule], float]:
    """Greedily add the threshold rule that raises the training F1 most.

    ``features`` holds 1-D arrays of the training pixels, ``labels`` their
    boolean glacier labels. Returns the rules and their training F1.
    """
    total = int(labels.sum())
    if total == 0:
        raise ValueError("no glacier pixel among the training pixels")
    selected = np.ones(labels.shape, dtype=bool)
    best_f1 = 2 * total / (labels.size + total)  # calling everything glacier
    rules: list[Rule] = []
    for _ in range(max_rules):
        candidates = []
        for name in features:
            if any(rule.feature == name for rule in rules) or not selected.any():
                continue
            f1, direction, threshold = best_threshold(
                features[name][selected], labels[selected], total
            )
            candidates.append((f1, Rule(name, direction, threshold)))
        if not candidates:
            break
        f1, rule = max(candidates, key=lambda c: c[0])
        if f1 < best_f1 + MIN_GAIN:
            break
        rules.append(rule)
        best_f1 = f1
        selected &= rule.apply(features)
        log.info(
            "rule %s %s %.5g: training F1 %.4f", rule.feature, rule.direction, rule.threshold, f1
        )
    return rules, best_f1


def _tile_pixels(
    tile_files: Sequence[str | Path],
    max_pixels: int | None = None,
    seed: int = 0,
    n_channels: int = len(BANDS),
) -> tuple[np.ndarray, np.ndarray]:
    """(C, n) channel values and (n,) uint8 labels of the valid pixels of tile stores.

    With ``max_pixels``, at most that many random pixels are kept per file, so
    that memory stays bounded however many tiles there are.
    """
    rng = np.random.default_rng(seed)
    bands, labels = [], []
    for path in tile_files:
        tiles = TileSet.load(path)
        images = np.asarray(tiles.images, dtype=np.float32)
        masks = np.asarray(tiles.masks)
        if images.ndim != 4 or images.shape[1] != n_channels:
            raise InputDataError(
                f"{path}: images must be (N, {n_channels}, S, S), not {images.shape}"
            )
        # Nodata pixels were set to 0 in every band when the tiles were cut.
        valid = (masks != NODATA) & np.any(images != 0, axis=1)
        file_bands, file_labels = np.moveaxis(images, 1, 0)[:, valid], masks[valid]
        if max_pixels is not None and file_labels.size > max_pixels:
            keep = rng.choice(file_labels.size, max_pixels, replace=False)
            file_bands, file_labels = file_bands[:, keep], file_labels[keep]
        bands.append(file_bands)
        labels.append(file_labels)
    if not bands:
        raise InputDataError("no tile file given")
    return np.concatenate(bands, axis=1), np.concatenate(labels)


def fit_baseline(
    train_tiles: Sequence[str | Path],
    out_json: str | Path,
    val_tiles: Sequence[str | Path] = (),
    max_rules: int = 3,
    seed: int = 0,
    channels: Sequence[str] = BANDS,
) -> dict[str, Any]:
    """Fit threshold rules on ``results/tiles/{date}/train.npz`` files of ``channels``
    (``data.channels``); write them as JSON.

    ``val_tiles`` (optional ``val.npz`` files) give the validation F1 that the
    selection tables compare with the models' selection score. Returns the JSON
    content: ``{"format", "features", "rules": [{"feature", "direction",
    "threshold"}], "train_f1", "val_f1", "n_train_pixels", "fit_seconds", ...}``.
    """
    start = time.perf_counter()
    channels = list(channels)
    bands, labels = _tile_pixels(train_tiles, MAX_PIXELS, seed, len(channels))
    if labels.size > MAX_PIXELS:
        keep = np.random.default_rng(seed).choice(labels.size, MAX_PIXELS, replace=False)
        bands, labels = bands[:, keep], labels[keep]
    try:
        rules, train_f1 = fit_rules(band_features(bands, channels), labels.astype(bool), max_rules)
    except ValueError as exc:
        raise InputDataError(f"{', '.join(map(str, train_tiles))}: {exc}") from exc
    result: dict[str, Any] = {
        "format": FORMAT,
        "bands": channels,
        "features": list(feature_names(channels)),
        "rules": [asdict(rule) for rule in rules],
        "train_f1": train_f1,
        "val_f1": None,
        "n_train_pixels": int(labels.size),
        "train_tiles": [str(p) for p in train_tiles],
        "val_tiles": [str(p) for p in val_tiles],
    }
    if val_tiles:
        # every pixel: an exact F1
        val_bands, val_labels = _tile_pixels(val_tiles, n_channels=len(channels))
        predicted = apply_rules(rules, band_features(val_bands, channels)).astype(np.uint8)
        result["val_f1"] = confusion_counts(predicted, val_labels).scores()["f1"]
    result["fit_seconds"] = time.perf_counter() - start
    write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    return result


def load_baseline(model_json: str | Path) -> tuple[list[Rule], tuple[str, ...]]:
    """Rules and channels of a baseline JSON written by :func:`fit_baseline`."""
    try:
        data = json.loads(Path(model_json).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        rules = [Rule(**rule) for rule in data["rules"]]
        channels = check_channels(data.get("bands", BANDS))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputDataError(f"cannot read threshold baseline {model_json}: {exc}") from exc
    features = feature_names(channels)
    for rule in rules:
        if rule.feature not in features or rule.direction not in (">=", "<="):
            raise InputDataError(f"{model_json}: unknown rule {rule}")
    return rules, channels


def load_rules(model_json: str | Path) -> list[Rule]:
    """Rules of a baseline JSON written by :func:`fit_baseline`."""
    return load_baseline(model_json)[0]


def predict_baseline(
    model_json: str | Path,
    scene_tif: str | Path,
    out_mask_tif: str | Path,
    block_rows: int = 512,
) -> None:
    """Apply the rules to ``results/scenes/{date}.tif`` and write a mask GeoTIFF.

    The mask is uint8 (1 glacier, 0 not, 255 where any band is nodata) on the
    scene's grid, like ``results/maps/{run}/{date}/mask.tif``.
    """
    rules, channels = load_baseline(model_json)
    try:
        src = rasterio.open(scene_tif)
    except rasterio.errors.RasterioIOError as exc:
        raise InputDataError(f"cannot open scene {scene_tif}: {exc}") from exc
    with src:
        if src.count != len(channels):
            raise InputDataError(
                f"{scene_tif}: expected {len(channels)} bands ({', '.join(channels)})"
            )
        described = [d.lower() if d else None for d in src.descriptions]
        if all(described) and described != list(channels):
            raise InputDataError(f"{scene_tif}: band order {described}, expected {list(channels)}")
        # the maps' one mask profile: a COG with colour table and class names
        with cog_writer(
            out_mask_tif,
            height=src.height,
            width=src.width,
            dtype=MASK.dtype,
            nodata=MASK.nodata,
            crs=src.crs,
            transform=src.transform,
            overview_resampling=MASK.resampling,
            descriptions=("glacier (threshold baseline)",),
            layer=MASK,
        ) as dst:
            for row in range(0, src.height, block_rows):
                window = Window(0, row, src.width, min(block_rows, src.height - row))
                bands = src.read(window=window, masked=True)
                nodata = np.ma.getmaskarray(bands).any(axis=0) | ~np.isfinite(bands.filled(0)).all(
                    axis=0
                )  # ±inf is nodata like NaN
                values = np.nan_to_num(
                    bands.filled(0).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0
                )
                mask = apply_rules(rules, band_features(values, channels)).astype(np.uint8)
                mask[nodata] = NODATA
                dst.write(mask, 1, window=window)
