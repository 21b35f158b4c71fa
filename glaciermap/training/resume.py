"""``last.pt``: the full state of a run, so a killed run continues where it stopped.

It holds the model and optimizer, every random-number-generator state, the
epochs done with their metrics, the best epoch's weights and, when the run was
stopped by SIGTERM in the middle of an epoch, that epoch's tile order and
running sums, and a fingerprint of the input files, so that a run whose tiles
changed starts again. It is rewritten atomically, so a SIGKILL at any moment
leaves the previous complete state.

It holds only tensors and plain Python values and is read with
``torch.load(weights_only=True)``: run folders are shared and copied, and a
crafted ``last.pt`` must not run code. A file that holds anything else (a
pickled object, or the NumPy arrays of glaciermap-resume/1) is refused with one
line and the run stops; deleting it makes the run start afresh.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from glaciermap.errors import InputDataError
from glaciermap.training.seeding import capture_rng_states, restore_rng_states
from glaciermap.training.settings import NON_NUMERIC, RunSettings
from glaciermap.utils.atomic import atomic_path
from glaciermap.utils.digest import file_sha256

log = logging.getLogger(__name__)

FORMAT = "glaciermap-resume/2"  # /1 pickled NumPy RNG state: not loadable safely


@dataclass
class EpochProgress:
    """Running sums of one epoch, kept in ``last.pt`` when a run stops mid-epoch.

    ``loss_sum`` stays a float64 tensor so that resuming adds the remaining
    batches to exactly the same partial sum as an uninterrupted epoch.
    """

    epoch: int
    order: torch.Tensor  # tile order of this epoch
    next_batch: int = 0
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    n_tiles: int = 0
    counts: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.int64))
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "order": self.order.cpu(),
            "next_batch": self.next_batch,
            "loss_sum": self.loss_sum.cpu(),
            "n_tiles": self.n_tiles,
            "counts": self.counts.cpu(),
            "seconds": self.seconds,
        }


@dataclass
class RunState:
    """Progress of a run besides the model and optimizer."""

    epochs_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_f1: float = -1.0
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    progress: EpochProgress | None = None


def _numeric_settings(settings: RunSettings) -> dict[str, Any]:
    data = settings.to_dict()
    for key in NON_NUMERIC:
        data.pop(key)
    return data


def input_fingerprint(
    train_sets: Sequence[str | Path],
    val_sets: Sequence[str | Path],
    stats_files: Sequence[str | Path],
) -> dict[str, list[str]]:
    """sha256 of the content of each input file of a run, in the order given.

    Stored in ``last.pt``: a run rerun because its tiles changed (same settings)
    must train again rather than resume the old model. Paths are left out, so
    moving the results folder keeps the state.
    """
    return {
        "train": [file_sha256(f) for f in train_sets],
        "val": [file_sha256(f) for f in val_sets],
        "stats": [file_sha256(f) for f in stats_files],
    }


def save_resume_state(
    path: Path,
    settings: RunSettings,
    inputs: dict[str, list[str]],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    state: RunState,
) -> None:
    """Write ``last.pt`` atomically."""
    payload = {
        "format": FORMAT,
        "settings": _numeric_settings(settings),
        "inputs": inputs,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng_states(generator),
        "epochs_done": state.epochs_done,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_val_f1": state.best_val_f1,
        "best_state": state.best_state,
        "train_seconds": state.train_seconds,
        "progress": state.progress.to_dict() if state.progress else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_resume_state(
    path: Path,
    settings: RunSettings,
    inputs: dict[str, list[str]],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> RunState | None:
    """Restore model, optimizer and RNGs from ``last.pt``; None when there is nothing to resume.

    A state saved with other settings (the user changed the config) or from
    other input files (``inputs``, see :func:`input_fingerprint`; a state
    without one is from an older version) is ignored with a warning: the run
    starts again from scratch.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False: keep only the line naming the type.
        lines = [line for line in str(exc).splitlines() if "GLOBAL" in line]
        reason = lines[0].strip().rstrip(".") if lines else "not a weights-only file"
        raise InputDataError(
            f"refusing the resume state {path}: it holds objects other than tensors and "
            f"plain values ({reason}), which could run code; if it is not from this "
            "glaciermap version or not yours, delete it and the run starts afresh"
        ) from exc
    except Exception as exc:  # any unreadable file is bad input
        raise InputDataError(f"cannot read the resume state {path}: {exc}; delete it") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputDataError(f"{path} is not a glaciermap resume state; delete it")
    if payload["settings"] != _numeric_settings(settings):
        log.warning("%s was saved with other settings: starting the run again", path)
        return None
    if payload.get("inputs") != inputs:
        log.warning(
            "%s was saved from other input tiles (train/val/stats content): starting the run again",
            path,
        )
        return None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    restore_rng_states(payload["rng"], generator)
    progress = payload["progress"]
    device = next(model.parameters()).device
    log.info("resuming %s after epoch %d", path, payload["epochs_done"])
    return RunState(
        epochs_done=payload["epochs_done"],
        history=payload["history"],
        best_epoch=payload["best_epoch"],
        best_val_f1=payload["best_val_f1"],
        best_state=payload["best_state"],
        train_seconds=payload["train_seconds"],
        progress=None
        if progress is None
        else EpochProgress(
            epoch=progress["epoch"],
            order=progress["order"],
            next_batch=progress["next_batch"],
            loss_sum=progress["loss_sum"].to(device),
            n_tiles=progress["n_tiles"],
            counts=progress["counts"].to(device),
            seconds=progress["seconds"],
        ),
    )
