"""Prediction checkpoints: everything needed to map glaciers with a trained model.

A checkpoint is a ``torch.save``-d dict (``docs/architecture.md``)::

    {"format": "glaciermap-checkpoint/1", "spec": ModelSpec.to_dict(),
     "state_dict": {...} (CPU tensors), "bands": ["blue", "green", "red", "nir"],
     "normalization": {"mode": "dataset", "mean": [C], "std": [C]}
                      or {"mode": "scene", "percentiles": [2, 98]},
     "tile_size": int, "threshold": float, "epoch": int, "metrics": {...}}

``bands`` is the model's channel list (``data.channels`` of the run, e.g. with
``swir16``, ``elevation``, ``slope``: :mod:`glaciermap.channels`); a scene to map
must supply each, in any band order. It holds only plain types and tensors, so
it loads with ``weights_only=True`` (no code from the file runs).
:func:`load_predictor` rebuilds the model from the stored spec and returns a
:class:`Predictor` that takes unnormalised bands; a ``scene``-normalised model
needs :meth:`Predictor.prepare` on each scene first.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from glaciermap.channels import DEFAULT_CHANNELS, check_channels
from glaciermap.data.normalization import WindowedBands, scene_range
from glaciermap.errors import InputDataError
from glaciermap.models.normalizer import Normalizer
from glaciermap.models.outputs import glacier_probability
from glaciermap.models.registry import build_model, count_parameters
from glaciermap.models.spec import ModelSpec
from glaciermap.utils.atomic import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "Predictor",
    "count_parameters",
    "load_checkpoint",
    "load_predictor",
    "prediction_checkpoint",
    "save_prediction_checkpoint",
]

CHECKPOINT_FORMAT = "glaciermap-checkpoint/1"
_REQUIRED_KEYS = (
    "format",
    "spec",
    "state_dict",
    "bands",
    "normalization",
    "tile_size",
    "threshold",
)
# every model accepts H and W that are multiples of this (five stride-2 stages)
SIZE_MULTIPLE = 32


def _plain(value: Any) -> Any:
    """Metrics as JSON types (numpy scalars become floats) so ``weights_only`` loading works."""

    def convert(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        raise TypeError(f"metric value of type {type(obj).__name__} is not JSON-like")

    return json.loads(json.dumps(value, default=convert))


def _normalization(normalization: Mapping[str, Any], n_bands: int) -> dict[str, Any]:
    """The checked normalisation spec (ValueError when it does not fit ``n_bands``)."""
    return Normalizer(normalization, n_bands, torch.device("cpu")).spec


def prediction_checkpoint(
    model: nn.Module,
    spec: ModelSpec,
    normalization: Mapping[str, Sequence[float]],
    tile_size: int,
    threshold: float,
    bands: Sequence[str] = DEFAULT_CHANNELS,
    epoch: int = 0,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (e.g. to embed in a resume state); see the module docstring."""
    check_channels(bands)  # ValueError on a name outside the vocabulary or out of order
    if spec.in_channels != len(bands):
        raise ValueError(f"model has {spec.in_channels} input channels for bands {list(bands)}")
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    return {
        "format": CHECKPOINT_FORMAT,
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "bands": list(bands),
        "normalization": _normalization(normalization, len(bands)),
        "tile_size": int(tile_size),
        "threshold": float(threshold),
        "epoch": int(epoch),
        "metrics": _plain(dict(metrics or {})),
    }


def save_prediction_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    spec: ModelSpec,
    normalization: Mapping[str, Sequence[float]],
    tile_size: int,
    threshold: float,
    bands: Sequence[str] = DEFAULT_CHANNELS,
    epoch: int = 0,
    metrics: Mapping[str, Any] | None = None,
) -> None:
    """Write a prediction checkpoint to ``path`` atomically (all or nothing)."""
    checkpoint = prediction_checkpoint(
        model, spec, normalization, tile_size, threshold, bands, epoch, metrics
    )
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a prediction checkpoint; :class:`InputDataError` names the file."""
    file = Path(path)
    if not file.is_file():
        raise InputDataError(f"checkpoint not found: {file}")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or truncated file
        raise InputDataError(f"{file}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
        raise InputDataError(f"{file}: format is {found!r}, expected {CHECKPOINT_FORMAT!r}")
    missing = [key for key in _REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise InputDataError(f"{file}: checkpoint lacks {', '.join(missing)}")
    bands = list(checkpoint["bands"])
    try:
        check_channels(bands)
    except ValueError as exc:
        raise InputDataError(f"{file}: band layout {bands}: {exc}") from exc
    try:
        spec = ModelSpec.from_dict(checkpoint["spec"])
        checkpoint["normalization"] = _normalization(checkpoint["normalization"], len(bands))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(f"{file}: invalid model spec or normalization ({exc})") from exc
    if spec.in_channels != len(bands):
        raise InputDataError(
            f"{file}: model has {spec.in_channels} input channels for {len(bands)} bands"
        )
    return checkpoint


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right up to a multiple; reflect where the image is big enough."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class Predictor:
    """A trained model with its band layout, normalisation and decision threshold."""

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        normalization: Mapping[str, Sequence[float]],
        tile_size: int,
        threshold: float,
        bands: Sequence[str] = DEFAULT_CHANNELS,
        device: str | torch.device = "cpu",
        epoch: int = 0,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.spec = spec
        self.bands = list(bands)
        self.normalization = _normalization(normalization, len(self.bands))
        self.tile_size = int(tile_size)
        self.threshold = float(threshold)
        self.epoch = epoch
        self.metrics = dict(metrics or {})
        self.normalizer = Normalizer(self.normalization, len(self.bands), self.device)
        self.scene_ranges: torch.Tensor | None = None

    def prepare(self, source: WindowedBands) -> None:
        """Before predicting a scene: measure its robust range when the model needs it."""
        if self.normalizer.needs_ranges:
            ranges = scene_range(source, channels=self.bands)
            self.scene_ranges = torch.from_numpy(ranges).to(self.device)

    def predict_proba(self, x: torch.Tensor, ranges: torch.Tensor | None = None) -> torch.Tensor:
        """Glacier probability (N, H, W) on ``self.device`` for unnormalised bands (N, C, H, W).

        NaN (nodata) is replaced by 0 before normalising, as the tile store does
        for the training tiles; H and W are padded to a multiple of 32 and the
        result cropped back. ``ranges`` (scene normalisation) defaults to the
        range :meth:`prepare` measured.
        """
        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise ValueError(f"expected (N, {len(self.bands)}, H, W) bands, got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = torch.nan_to_num(x.to(self.device, torch.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if self.normalizer.needs_ranges and ranges is None:
            if self.scene_ranges is None:
                raise InputDataError(
                    "this model normalises each scene by its own robust range: "
                    "call Predictor.prepare(scene) before predicting"
                )
            ranges = self.scene_ranges
        x = _pad_to_multiple(self.normalizer(x, ranges), SIZE_MULTIPLE)
        with torch.inference_mode():
            mask_logits, _ = self.model(x)
            probability = glacier_probability(mask_logits.float(), self.spec.hparams.activation)
        return probability[:, :height, :width]

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean glacier mask (N, H, W): probability >= the stored threshold."""
        return self.predict_proba(x) >= self.threshold


def load_predictor(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Predictor:
    """Rebuild the model stored at ``path`` on ``device``, ready to predict (eval mode)."""
    checkpoint = load_checkpoint(path)
    # The trained weights include the encoder: do not read the initial weights file again.
    spec = ModelSpec.from_dict(checkpoint["spec"])
    model = build_model(dataclasses.replace(spec, encoder_weights=None))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise InputDataError(f"{path}: weights do not fit model {spec.name} ({exc})") from exc
    return Predictor(
        model,
        spec,
        checkpoint["normalization"],
        checkpoint["tile_size"],
        checkpoint["threshold"],
        checkpoint["bands"],
        device,
        checkpoint.get("epoch", 0),
        checkpoint.get("metrics"),
    )
