"""One training run: the function the Snakemake rule script and ``glaciermap train`` call.

Outputs in ``out_dir`` (docs/architecture.md): ``metrics.json``, ``best.pt``
(prediction checkpoint of the best validation-F1 epoch), ``last.pt`` (full
resume state, rewritten atomically after every epoch and on SIGTERM) and the
TensorBoard events.

The recipe (``training`` settings): Adam or AdamW, a learning rate per step
(:mod:`glaciermap.training.schedule`), optional gradient clipping, the loss
family of :mod:`glaciermap.training.losses` over labelled pixels only, the input
normalisation of :mod:`glaciermap.models.normalizer`, and the augmentation mode
of the run's ``{aug}``.

Speed: the tiles of a run fit in memory, so they are one tensor on the
training device and batches are drawn by indexing it (no per-sample loader).
On CUDA the model runs channels-last under bf16 autocast; the CPU path stays
float32 so that two runs with the same seed give identical numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import ConfusionCounts
from glaciermap.labels import GLACIER, NODATA
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.normalizer import Normalizer
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
from glaciermap.training.schedule import learning_rate
from glaciermap.training.seeding import seed_everything
from glaciermap.training.settings import RunSettings
from glaciermap.training.tiles import TileGroups, TileTensors, load_tiles, pooled_stats
from glaciermap.utils.atomic import write_text_atomic
from glaciermap.utils.device import resolve_device
from glaciermap.utils.progress import track

log = logging.getLogger(__name__)

N_BOARD_TILES = 4  # validation tiles shown in TensorBoard
# Augmentation drawn per batch, from the run's settings.
ONLINE_AUGMENTATION = ("aug-online", "aug-geometric")

ModelFactory = Callable[[ModelSpec], nn.Module]


def describe_device(device: torch.device) -> str:
    """``cuda (card name)`` or ``cpu (n threads)``, as recorded in metrics.json."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def batch_indices(
    order: torch.Tensor, batch_size: int, group_of: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """The batches of an epoch's tile order (a last batch of one tile is dropped).

    With ``group_of`` (the tile-size group of every tile, :class:`TileGroups`) each
    batch holds tiles of one group: the order is split by group, each group's tiles
    are cut into batches in that order, and the batches run in the order of their
    first tile, so groups mix over the epoch. One group gives the plain batches.
    """
    if group_of is None or not len(group_of) or int(group_of.max()) == 0:
        return _batches(order, batch_size)
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    batches = []
    for group in torch.unique(group_of).tolist():
        batches += _batches(order[group_of[order] == group], batch_size)
    return sorted(batches, key=lambda batch: int(position[batch[0]]))


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    batches = list(order.split(batch_size))
    # A last batch of one tile breaks batch normalisation in training mode.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


class Trainer:
    """Model, optimizer, loss and normalisation of a run: one training step, one forward.

    Public so that ``benchmarks/train_throughput.py`` times exactly this code.
    """

    def __init__(
        self,
        settings: RunSettings,
        model: nn.Module,
        device: torch.device,
        normalizer: Normalizer,
        steps_per_epoch: int,
    ) -> None:
        self.settings = settings
        self.model = model
        self.device = device
        self.cuda = device.type == "cuda"
        self.normalizer = normalizer
        self.steps_per_epoch = steps_per_epoch
        self.seg_loss = segmentation_loss(settings.loss, settings.hparams.activation)
        optimizer = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        # training.ema_decay: an exponential moving average of the weights (and of the
        # batch-norm statistics) is what validation sees and best.pt holds.
        self.ema: AveragedModel | None = None
        if settings.ema_decay is not None:
            self.ema = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True
            )

    @property
    def eval_model(self) -> nn.Module:
        """The weights validated and checkpointed: the moving average, or the model."""
        return self.model if self.ema is None else self.ema.module

    @property
    def resumable(self) -> nn.Module:
        """What ``last.pt`` stores as the model: the model, with its average when there is one."""
        if self.ema is None:
            return self.model
        return nn.ModuleDict({"model": self.model, "ema": self.ema})

    def forward(
        self, batch: TileTensors, model: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and glacier probability of a batch of unnormalised tiles (by ``model``,
        default the one being trained)."""
        x = self.normalizer(batch.images, batch.ranges)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            mask_logits, aux_logits = (model or self.model)(x)
        loss = self.seg_loss(mask_logits, batch.masks)
        if aux_logits is not None:
            loss = loss + self.settings.aux_weight * auxiliary_loss(aux_logits, batch.masks)
        probability = glacier_probability(mask_logits.float(), self.settings.hparams.activation)
        return loss, probability.detach()

    def train_step(self, batch: TileTensors, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and optimizer step ``step`` (0-based over the run)."""
        rate = learning_rate(self.settings, step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        loss, probability = self.forward(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip_norm)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
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


def _scores(counts: Sequence[int]) -> dict[str, float]:
    scores = ConfusionCounts(*(int(c) for c in counts)).scores()
    return {key: float("nan") if value is None else value for key, value in scores.items()}


def selection_score(history: list[dict[str, Any]], last_epochs: int) -> float:
    """The study's criterion: mean validation F1 over the last ``last_epochs`` epochs."""
    tail = [record["val_f1"] for record in history[-last_epochs:]]
    return sum(tail) / len(tail)


def _hparam_values(settings: RunSettings) -> dict[str, Any]:
    """Every setting for TensorBoard's hparams, which accept numbers, strings and booleans.

    The cell's dropout, activation and pooling are in ``hparams`` (its slug) only:
    TensorBoard shows the first five settings that differ between runs (by name), and
    the five of a run's identity (aug, dates, hparams, model, seed) must be those.
    """
    values = settings.to_dict()
    augmentation = values.pop("augmentation") or {}
    jitter = augmentation.pop("jitter", {})
    values.update({f"aug_{key}": value for key, value in augmentation.items()})
    values.update({f"jitter_{key}": value for key, value in jitter.items()})
    return {key: "none" if value is None else value for key, value in values.items()}


def _hparams_session(settings: RunSettings) -> tuple[Summary, Summary]:
    """The run's session start (every setting) and end summaries for the HParams tab.

    No experiment summary: TensorBoard then builds the experiment from all runs'
    session starts, marks the settings that differ between runs and lists them
    first (the visible columns: model, hparams, dates, aug, seed in a study), and
    takes the metric columns from the runs' own curves (``f1/val_selection``,
    ``f1/val_best``, ``f1/val``, ...: last values), so that no single-point
    ``hparam/*`` scalars clutter Time Series (``SummaryWriter.add_hparams`` writes
    an experiment per run, which hides what differs, and such scalars).
    """
    _, start, end = hparams_summaries(_hparam_values(settings), {})
    return start, end


@dataclass
class _Run:
    """One run in progress: what its epochs read and write."""

    trainer: Trainer
    state: RunState
    generator: torch.Generator
    writer: SummaryWriter
    last_path: Path
    inputs: dict[str, list[str]]
    train: TileGroups
    val: TileGroups
    channels: tuple[str, ...]  # the tiles' channels (stats.json), in order

    @property
    def settings(self) -> RunSettings:
        return self.trainer.settings

    def save(self, progress: EpochProgress | None) -> Path:
        self.state.progress = progress
        trainer = self.trainer
        save_resume_state(
            self.last_path,
            self.settings,
            self.inputs,
            trainer.resumable,
            trainer.optimizer,
            self.generator,
            self.state,
        )
        return self.last_path

    def epochs(self, stop: StopFlag) -> None:
        """Train the epochs left; raises RunInterrupted after saving when ``stop`` is set."""
        settings = self.settings
        first = self.val.groups[0]  # shown tiles: of one size
        count = min(N_BOARD_TILES, len(first))
        shown = torch.linspace(0, len(first) - 1, count).long()
        for epoch in range(self.state.epochs_done + 1, settings.epochs + 1):
            progress = self.state.progress
            if progress is None or progress.epoch != epoch:
                order = torch.randperm(len(self.train), generator=self.generator)
                progress = EpochProgress(epoch=epoch, order=order)
            progress = self.train_epoch(progress, stop)
            val_loss, val_counts = self.validate()
            record = _epoch_record(epoch, progress, val_loss, val_counts)
            self.record(record)
            if epoch % settings.image_every == 0 or epoch == settings.epochs:
                self.show(first[shown.to(first.images.device)], epoch)
            self.writer.flush()
            self.state.epochs_done = epoch
            # last.pt every checkpoint_every epochs (it holds model, optimizer and the best
            # weights: a write costs a noticeable share of a small model's epoch), at the
            # end and on SIGTERM; a SIGKILL loses at most the epochs since the last one.
            if stop or epoch % settings.checkpoint_every == 0 or epoch == settings.epochs:
                self.save(None)
            _log_epoch_line(settings, record, progress)
            if stop:
                raise RunInterrupted(stop.signum or 15, str(self.last_path))

    def train_epoch(self, progress: EpochProgress, stop: StopFlag) -> EpochProgress:
        trainer, settings = self.trainer, self.settings
        trainer.model.train()
        started = time.perf_counter() - progress.seconds
        progress.loss_sum = progress.loss_sum.to(trainer.device)
        progress.counts = progress.counts.to(trainer.device)
        batches = batch_indices(progress.order, settings.batch_size, self.train.group_of)
        # Batches of this epoch as progress; the epoch's own log line follows, so no end line.
        label, first = f"epoch {progress.epoch}/{settings.epochs}", progress.next_batch
        indices = range(first, len(batches))
        for index in track(indices, len(batches), label, "batch", initial=first, leave=False):
            batch = self.train[batches[index]]
            if settings.aug in ONLINE_AUGMENTATION and settings.augmentation is not None:
                images, masks = augment(
                    batch.images, batch.masks, settings.augmentation, self.generator, self.channels
                )
                batch = TileTensors(images, masks, batch.ranges)
            step = (progress.epoch - 1) * len(batches) + index
            loss, probability = trainer.train_step(batch, step)
            # Sums stay on the device (no sync per batch) and in float64 (exact on resume).
            progress.loss_sum += loss.double() * len(batch)
            progress.counts += trainer.counts(probability, batch.masks)
            progress.n_tiles += len(batch)
            progress.next_batch = index + 1
            if stop and progress.next_batch < len(batches):
                progress.seconds = time.perf_counter() - started
                raise RunInterrupted(stop.signum or 15, str(self.save(progress)))
        progress.seconds = time.perf_counter() - started
        return progress

    @torch.no_grad()
    def validate(self) -> tuple[float, list[int]]:
        """Mean loss and confusion counts over the validation tiles (eval mode)."""
        trainer = self.trainer
        model = trainer.eval_model
        model.eval()
        loss_sum = torch.zeros((), device=trainer.device)
        counts = torch.zeros(4, dtype=torch.int64, device=trainer.device)
        step = 2 * self.settings.batch_size  # no gradients: larger batches fit
        for group in self.val.groups:
            for start in range(0, len(group), step):
                batch = group[start : start + step]
                loss, probability = trainer.forward(batch, model)
                loss_sum += loss.float() * len(batch)
                counts += trainer.counts(probability, batch.masks)
        return loss_sum.item() / len(self.val), [int(c) for c in counts]

    def record(self, record: dict[str, Any]) -> None:
        state = self.state
        state.history.append(record)
        state.train_seconds += record["seconds"]
        if record["val_f1"] > state.best_val_f1:
            state.best_epoch, state.best_val_f1 = record["epoch"], record["val_f1"]
            state.best_state = {
                k: v.detach().to("cpu", copy=True)
                for k, v in self.trainer.eval_model.state_dict().items()
            }
        _log_epoch(self.writer, record)
        epoch = record["epoch"]
        # Curves whose last value is a run's headline (the HParams tab's metric columns).
        self.writer.add_scalar("f1/val_best", state.best_val_f1, epoch)
        selection = selection_score(state.history, self.settings.selection_epochs)
        self.writer.add_scalar("f1/val_selection", selection, epoch)
        # The rate of the epoch's first step (per epoch, like every curve here: a resumed
        # run's purge_step counts epochs).
        steps = self.trainer.steps_per_epoch
        rate = learning_rate(self.settings, (epoch - 1) * steps, steps)
        self.writer.add_scalar("train/learning_rate", rate, epoch)

    @torch.no_grad()
    def show(self, tiles: TileTensors, epoch: int) -> None:
        model = self.trainer.eval_model
        model.eval()
        _, probability = self.trainer.forward(tiles, model)
        panels = overlay_panels(tiles.images, tiles.masks, probability, channels=self.channels)
        self.writer.add_image("val/rgb_truth_probability_prediction", panels, epoch)


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


def _log_epoch_line(settings: RunSettings, record: dict[str, Any], progress: EpochProgress) -> None:
    log.info(
        "epoch %d/%d: train loss %.4f F1 %.4f | val loss %.4f F1 %.4f IoU %.4f | "
        "%.1f s, %.1f tiles/s",
        record["epoch"],
        settings.epochs,
        record["train_loss"],
        record["train_f1"],
        record["val_loss"],
        record["val_f1"],
        record["val_iou"],
        record["seconds"],
        progress.n_tiles / max(record["seconds"], 1e-9),
    )


def _load_inputs(
    settings: RunSettings,
    train_sets: Sequence[str | Path],
    val_sets: Sequence[str | Path],
    generator: torch.Generator,
    channels: Sequence[str],
) -> tuple[TileGroups, TileGroups, dict[str, int]]:
    """The run's train tiles (with aug-concat's copies, drawn from the freshly seeded
    ``generator``, so a resumed run draws them again identically) and validation tiles."""
    train, val = load_tiles(train_sets, len(channels)), load_tiles(val_sets, len(channels))
    for name, files, tiles in (("train", train_sets, train), ("val", val_sets, val)):
        if len(tiles) < 2:
            names = ", ".join(str(f) for f in files)
            raise InputDataError(f"{name} tiles {names}: {len(tiles)} tiles, need at least 2")
    labelled = val.labelled_pixels()
    if labelled < settings.min_val_pixels:
        raise InputDataError(
            f"val tiles {', '.join(str(f) for f in val_sets)}: {labelled} labelled pixels in "
            f"{len(val)} tiles, fewer than training.min_val_pixels = {settings.min_val_pixels}; "
            "give validation more ground (data.tiles.val_fraction, "
            "data.chips.<label>.validation.fraction) or lower the minimum"
        )
    sizes = {"n_train_tiles": len(train), "n_val_tiles": len(val)}
    if settings.aug == "aug-concat" and settings.augmentation is not None:
        groups = []
        for group in train.groups:
            images, masks = concat_augmented(
                group.images, group.masks, settings.augmentation, generator, channels=channels
            )
            groups.append(TileTensors(images, masks, torch.cat([group.ranges, group.ranges])))
        train = TileGroups(groups)
    sizes["n_train_samples"] = len(train)  # with aug-concat's copies
    return train, val, sizes


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

    stats = pooled_stats(stats_files)
    # The channels come with the tiles (their stats.json), and set the model's input.
    channels = tuple(stats["bands"])
    spec = dataclasses.replace(settings.spec, in_channels=len(channels))
    train, val, sizes = _load_inputs(settings, train_sets, val_sets, generator, channels)
    # After loading, which names a missing or unreadable file clearly.
    inputs = input_fingerprint(train_sets, val_sets, stats_files)
    train, val = train.to(device), val.to(device)

    model = build(spec).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    normalizer = Normalizer.for_training(settings.normalization, stats, len(channels), device)
    steps = len(batch_indices(torch.arange(len(train)), settings.batch_size, train.group_of))
    trainer = Trainer(settings, model, device, normalizer, steps)
    state = load_resume_state(
        last_path, settings, inputs, trainer.resumable, trainer.optimizer, generator
    )
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
    start_session, end_session = _hparams_session(settings)
    try:
        writer._get_file_writer().add_summary(start_session)
        run = _Run(trainer, state, generator, writer, last_path, inputs, train, val, channels)
        with stop_on_sigterm() as stop:
            run.epochs(stop)
        metrics = _finish(settings, state, n_parameters, sizes, device)
        # The checkpoint's tile size (the default prediction window): the largest.
        _save_best(settings, spec, channels, state, model, normalizer, max(train.sizes), out)
        writer._get_file_writer().add_summary(end_session)
    finally:
        writer.close()
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


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
    spec: ModelSpec,
    channels: Sequence[str],
    state: RunState,
    model: nn.Module,
    normalizer: Normalizer,
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
        spec,
        normalizer.spec,
        tile_size=tile_size,
        threshold=settings.threshold,
        bands=channels,
        epoch=state.best_epoch,
        metrics={k: v for k, v in best_record.items() if not math.isnan(v)},
    )
