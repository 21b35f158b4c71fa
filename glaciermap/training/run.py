"""One training run: the function the Snakemake rule script and ``glaciermap train`` call.

Outputs in ``out_dir`` (docs/architecture.md): ``metrics.json``, ``best.pt``
(prediction checkpoint of the best validation-F1 epoch), ``last.pt`` (full
resume state, rewritten atomically after every epoch and on SIGTERM) and the
TensorBoard events.

Speed: the tiles of a run fit in memory, so they are one tensor on the
training device and batches are drawn by indexing it (no per-sample loader).
On CUDA the model runs channels-last under bf16 autocast; the CPU path stays
float32 so that two runs with the same seed give identical numbers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import ConfusionCounts
from glaciermap.labels import GLACIER, NODATA
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.outputs import glacier_probability
from glaciermap.models.registry import build_model, count_parameters
from glaciermap.models.spec import ModelSpec
from glaciermap.training.augmentation import augment, concat_augmented
from glaciermap.training.board import overlay_panels
from glaciermap.training.interruption import RunInterrupted, StopFlag, stop_on_sigterm
from glaciermap.training.losses import auxiliary_loss, segmentation_loss
from glaciermap.training.resume import (
    EpochProgress,
    RunState,
    input_fingerprint,
    load_resume_state,
    save_resume_state,
)
from glaciermap.training.seeding import seed_everything
from glaciermap.training.settings import RunSettings
from glaciermap.training.tiles import load_tiles, pooled_normalization
from glaciermap.utils.atomic import write_text_atomic
from glaciermap.utils.device import resolve_device

log = logging.getLogger(__name__)

N_BOARD_TILES = 4  # validation tiles shown in TensorBoard

ModelFactory = Callable[[ModelSpec], nn.Module]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


class Trainer:
    """Model, optimizer, loss and normalisation of a run: one training step, one forward.

    Public so that ``benchmarks/train_throughput.py`` times exactly this code.
    """

    def __init__(
        self,
        settings: RunSettings,
        model: nn.Module,
        device: torch.device,
        normalization: dict[str, list[float]],
    ) -> None:
        self.settings = settings
        self.model = model
        self.device = device
        self.cuda = device.type == "cuda"
        self.mean = torch.tensor(normalization["mean"], device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(normalization["std"], device=device).view(1, -1, 1, 1)
        self.seg_loss = segmentation_loss(settings.loss, settings.hparams.activation)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and glacier probability of a batch of unnormalised tiles."""
        x = (images - self.mean) / self.std
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            mask_logits, aux_logits = self.model(x)
        loss = self.seg_loss(mask_logits, masks)
        if aux_logits is not None:
            loss = loss + self.settings.aux_weight * auxiliary_loss(aux_logits, masks)
        probability = glacier_probability(mask_logits.float(), self.settings.hparams.activation)
        return loss, probability.detach()

    def train_step(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and optimizer step on one batch; returns (loss, probability)."""
        loss, probability = self.forward(images, masks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), probability

    def counts(self, probability: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """tp, fp, fn, tn over the labelled pixels (unlabelled ones count nowhere)."""
        predicted = probability >= self.settings.threshold
        truth = masks == GLACIER
        labelled = masks != NODATA
        return torch.stack(
            [
                (predicted & truth & labelled).sum(),
                (predicted & ~truth & labelled).sum(),
                (~predicted & truth & labelled).sum(),
                (~predicted & ~truth & labelled).sum(),
            ]
        )


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    batches = list(order.split(batch_size))
    # A last batch of one tile breaks batch normalisation in training mode.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _scores(counts: Sequence[int]) -> dict[str, float]:
    scores = ConfusionCounts(*(int(c) for c in counts)).scores()
    return {key: float("nan") if value is None else value for key, value in scores.items()}


def _train_epoch(
    trainer: Trainer,
    images: torch.Tensor,
    masks: torch.Tensor,
    progress: EpochProgress,
    generator: torch.Generator,
    stop: StopFlag,
    save: Callable[[EpochProgress], Path],
) -> EpochProgress:
    settings = trainer.settings
    trainer.model.train()
    started = time.perf_counter() - progress.seconds
    progress.loss_sum = progress.loss_sum.to(trainer.device)
    progress.counts = progress.counts.to(trainer.device)
    batches = _batches(progress.order, settings.batch_size)
    for index in range(progress.next_batch, len(batches)):
        batch = batches[index].to(trainer.device)
        x, y = images[batch], masks[batch]
        if settings.aug == "aug-online":
            x, y = augment(x, y, settings.augmentation, generator)
        loss, probability = trainer.train_step(x, y)
        # Sums stay on the device (no sync per batch) and in float64 (exact on resume).
        progress.loss_sum += loss.double() * len(batch)
        progress.counts += trainer.counts(probability, y)
        progress.n_tiles += len(batch)
        progress.next_batch = index + 1
        if stop and progress.next_batch < len(batches):
            progress.seconds = time.perf_counter() - started
            raise RunInterrupted(stop.signum or 15, str(save(progress)))
    progress.seconds = time.perf_counter() - started
    return progress


@torch.no_grad()
def _validate(
    trainer: Trainer, images: torch.Tensor, masks: torch.Tensor
) -> tuple[float, list[int]]:
    """Mean loss and confusion counts over the validation tiles (eval mode)."""
    trainer.model.eval()
    loss_sum = torch.zeros((), device=trainer.device)
    counts = torch.zeros(4, dtype=torch.int64, device=trainer.device)
    step = 2 * trainer.settings.batch_size  # no gradients: larger batches fit
    for start in range(0, images.shape[0], step):
        x, y = images[start : start + step], masks[start : start + step]
        loss, probability = trainer.forward(x, y)
        loss_sum += loss.float() * len(x)
        counts += trainer.counts(probability, y)
    return loss_sum.item() / images.shape[0], [int(c) for c in counts]


def _epoch_record(
    epoch: int, progress: EpochProgress, val_loss: float, val_counts: list[int]
) -> dict[str, Any]:
    train = _scores(progress.counts.tolist())
    val = _scores(val_counts)
    return {
        "epoch": epoch,
        "train_loss": progress.loss_sum.item() / max(progress.n_tiles, 1),
        "val_loss": val_loss,
        "train_f1": train["f1"],
        "val_f1": val["f1"],
        "val_iou": val["iou"],
        "val_precision": val["precision"],
        "val_recall": val["recall"],
        "seconds": progress.seconds,
    }


def _log_epoch(writer: SummaryWriter, record: dict[str, Any]) -> None:
    epoch = record["epoch"]
    writer.add_scalar("loss/train", record["train_loss"], epoch)
    writer.add_scalar("loss/val", record["val_loss"], epoch)
    writer.add_scalar("f1/train", record["train_f1"], epoch)
    writer.add_scalar("f1/val", record["val_f1"], epoch)
    writer.add_scalar("iou/val", record["val_iou"], epoch)
    writer.add_scalar("precision/val", record["val_precision"], epoch)
    writer.add_scalar("recall/val", record["val_recall"], epoch)


def selection_score(history: list[dict[str, Any]], last_epochs: int) -> float:
    """The study's criterion: mean validation F1 over the last ``last_epochs`` epochs."""
    tail = [record["val_f1"] for record in history[-last_epochs:]]
    return sum(tail) / len(tail)


def _hparam_values(settings: RunSettings) -> dict[str, Any]:
    """TensorBoard's hparams accept only numbers, strings and booleans."""
    values = settings.to_dict()
    augmentation = values.pop("augmentation") or {}
    jitter = augmentation.pop("jitter", {})
    values.update({f"aug_{key}": value for key, value in augmentation.items()})
    values.update({f"jitter_{key}": value for key, value in jitter.items()})
    values.update(
        dropout=settings.hparams.dropout,
        activation=settings.hparams.activation,
        pooling=settings.hparams.pooling,
    )
    return {key: "none" if value is None else value for key, value in values.items()}


def train_run(
    settings: RunSettings,
    train_sets: Sequence[str | Path],
    val_sets: Sequence[str | Path],
    stats_files: Sequence[str | Path],
    out_dir: str | Path,
    build: ModelFactory = build_model,
) -> dict[str, Any]:
    """Train one model and write its run folder; return the content of ``metrics.json``.

    ``train_sets``/``val_sets`` are the ``{train,val}.npz`` tile files of the run's
    dates, ``stats_files`` their ``stats.json`` (the normalisation is pooled over
    them). A ``last.pt`` left in ``out_dir`` by a killed run with the same
    settings and the same input file contents is continued from. ``build`` makes
    the model from its spec (tests pass a small one). Raises
    :class:`RunInterrupted` after saving on SIGTERM.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"
    torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    generator = seed_everything(settings.seed)

    normalization = pooled_normalization(stats_files)
    train_images, train_masks = load_tiles(train_sets)
    val_images, val_masks = load_tiles(val_sets)
    # After loading, which names a missing or unreadable file clearly.
    inputs = input_fingerprint(train_sets, val_sets, stats_files)
    for name, files, tensor in (("train", train_sets, train_images), ("val", val_sets, val_masks)):
        if len(tensor) < 2:
            names = ", ".join(str(f) for f in files)
            raise InputDataError(f"{name} tiles {names}: {len(tensor)} tiles, need at least 2")
    sizes = {"n_train_tiles": len(train_images), "n_val_tiles": len(val_images)}
    if settings.aug == "aug-concat":
        train_images, train_masks = concat_augmented(
            train_images, train_masks, settings.augmentation, generator
        )
    sizes["n_train_samples"] = len(train_images)  # with aug-concat's copies
    train_images, train_masks = train_images.to(device), train_masks.to(device)
    val_images, val_masks = val_images.to(device), val_masks.to(device)

    model = build(settings.spec).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    trainer = Trainer(settings, model, device, normalization)
    state = load_resume_state(last_path, settings, inputs, model, trainer.optimizer, generator)
    if state is None:
        state = RunState()
    n_parameters = count_parameters(model)
    log.info(
        "run %s: %d train samples (%d tiles), %d val tiles, %d parameters, %s, from epoch %d",
        out,
        sizes["n_train_samples"],
        sizes["n_train_tiles"],
        sizes["n_val_tiles"],
        n_parameters,
        describe_device(device),
        state.epochs_done + 1,
    )

    writer = SummaryWriter(log_dir=str(out), purge_step=state.epochs_done + 1)
    try:
        with stop_on_sigterm() as stop:
            _train_epochs(
                trainer,
                state,
                generator,
                stop,
                writer,
                last_path,
                inputs,
                (train_images, train_masks, val_images, val_masks),
            )
        metrics = _finish(settings, state, n_parameters, sizes, device)
        _save_best(settings, state, model, normalization, train_images.shape[-1], out)
        writer.add_hparams(
            _hparam_values(settings),
            {
                "hparam/selection_score": metrics["selection_score"],
                "hparam/best_val_f1": metrics["best_val_f1"],
                "hparam/final_val_f1": state.history[-1]["val_f1"],
                "hparam/final_val_loss": state.history[-1]["val_loss"],
            },
            run_name=".",
            global_step=settings.epochs,
        )
    finally:
        writer.close()
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _train_epochs(
    trainer: Trainer,
    state: RunState,
    generator: torch.Generator,
    stop: StopFlag,
    writer: SummaryWriter,
    last_path: Path,
    inputs: dict[str, list[str]],
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    settings = trainer.settings
    train_images, train_masks, val_images, val_masks = tensors
    shown = torch.linspace(0, len(val_images) - 1, min(N_BOARD_TILES, len(val_images))).long()

    def save(progress: EpochProgress | None) -> Path:
        state.progress = progress
        save_resume_state(
            last_path, settings, inputs, trainer.model, trainer.optimizer, generator, state
        )
        return last_path

    for epoch in range(state.epochs_done + 1, settings.epochs + 1):
        progress = state.progress
        if progress is None or progress.epoch != epoch:
            order = torch.randperm(len(train_images), generator=generator)
            progress = EpochProgress(epoch=epoch, order=order)
        progress = _train_epoch(trainer, train_images, train_masks, progress, generator, stop, save)
        val_loss, val_counts = _validate(trainer, val_images, val_masks)
        record = _epoch_record(epoch, progress, val_loss, val_counts)
        state.history.append(record)
        state.train_seconds += record["seconds"]
        if record["val_f1"] > state.best_val_f1:
            state.best_epoch, state.best_val_f1 = epoch, record["val_f1"]
            state.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()
            }
        _log_epoch(writer, record)
        if epoch % settings.image_every == 0 or epoch == settings.epochs:
            with torch.no_grad():
                trainer.model.eval()
                _, probability = trainer.forward(val_images[shown], val_masks[shown])
            panels = overlay_panels(val_images[shown], val_masks[shown], probability)
            writer.add_image("val/rgb_truth_probability_prediction", panels, epoch)
        writer.flush()
        state.epochs_done = epoch
        save(None)
        log.info(
            "epoch %d/%d: train loss %.4f F1 %.4f | val loss %.4f F1 %.4f IoU %.4f | "
            "%.1f s, %.1f tiles/s",
            epoch,
            settings.epochs,
            record["train_loss"],
            record["train_f1"],
            record["val_loss"],
            record["val_f1"],
            record["val_iou"],
            record["seconds"],
            progress.n_tiles / max(record["seconds"], 1e-9),
        )
        if stop:
            raise RunInterrupted(stop.signum or 15, str(last_path))


def _finish(
    settings: RunSettings,
    state: RunState,
    n_parameters: int,
    sizes: dict[str, int],
    device: torch.device,
) -> dict[str, Any]:
    return {
        "run": settings.to_dict(),
        "epochs": state.history,
        "selection_score": selection_score(state.history, settings.selection_epochs),
        "best_epoch": state.best_epoch,
        "best_val_f1": state.best_val_f1,
        "n_parameters": n_parameters,
        "train_seconds": state.train_seconds,
        **sizes,
        "device": describe_device(device),
    }


def _save_best(
    settings: RunSettings,
    state: RunState,
    model: nn.Module,
    normalization: dict[str, list[float]],
    tile_size: int,
    out: Path,
) -> None:
    """Write ``best.pt`` from the best epoch's weights (loaded into ``model``, training is over)."""
    if state.best_state is None:
        raise RuntimeError("no epoch was validated")  # epochs >= 1 makes this a bug
    model.load_state_dict(state.best_state)
    best_record = state.history[state.best_epoch - 1]
    save_prediction_checkpoint(
        out / "best.pt",
        model,
        settings.spec,
        normalization,
        tile_size=tile_size,
        threshold=settings.threshold,
        epoch=state.best_epoch,
        metrics={k: v for k, v in best_record.items() if not math.isnan(v)},
    )
