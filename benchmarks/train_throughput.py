"""Training and inference throughput per architecture: the project's loop vs a plain loop.

For each model, at 128 x 128 x 4 and batch 16, in one process:

- **project**: the training path of ``glaciermap.training.run`` (``Trainer.train_step``):
  tiles held as one tensor on the device, batches by indexing, normalisation on
  the batch; on CUDA channels-last and bf16 autocast. Inference: the same
  model in eval mode on index batches (channels-last + bf16 on CUDA).
- **reference**: a per-sample ``Dataset`` (normalising each tile) and a
  ``DataLoader`` (shuffle, batch 16, main process), float32, no channels-last.

Both use the same architecture, loss (cross-entropy + auxiliary head) and
Adam. patches/s = batch / median seconds per step; the four loops' steps are
interleaved after warm-up so that they share the machine's load.
Random tiles are enough: the figures measure speed, not learning.

Usage (CPU, a few minutes)::

    python benchmarks/train_throughput.py --models deeplabv3plus fpn pspnet --steps 3

Prints a Markdown table headed by the device name.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from glaciermap.models.normalizer import Normalizer
from glaciermap.models.registry import build_model, count_parameters
from glaciermap.runs import DISPLAY_NAMES, MODEL_NAMES, HParams
from glaciermap.training.losses import auxiliary_loss, segmentation_loss
from glaciermap.training.run import Trainer, describe_device
from glaciermap.training.settings import RunSettings
from glaciermap.training.tiles import TileTensors
from glaciermap.utils.device import resolve_device

SIZE, BANDS = 128, 4
HPARAMS = HParams(0.4, "softmax", "mean")  # the study's model-selection cell
NORMALIZATION = {"mode": "dataset", "mean": [0.5] * BANDS, "std": [0.25] * BANDS}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_step_seconds(
    device: torch.device, warmup: int, steps: int, loops: dict[str, Callable[[], None]]
) -> dict[str, float]:
    """Median seconds per call of each loop, the loops' timed calls interleaved.

    Interleaving (in a rotating order) puts the loops under the same machine
    load, so their ratios hold on a shared machine even when the absolute
    figures wander.
    """
    for loop in loops.values():
        for _ in range(warmup):
            loop()
    times: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for step in range(steps):
        # Rotate the order every round: no loop always runs right after another.
        for name in names[step % len(names) :] + names[: step % len(names)]:
            loop = loops[name]
            _sync(device)
            start = time.perf_counter()
            loop()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


class TileDataset(Dataset):
    """The plain way: one normalised tile per ``__getitem__``."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.images, self.masks = images, masks
        self.mean = torch.tensor(NORMALIZATION["mean"]).view(-1, 1, 1)
        self.std = torch.tensor(NORMALIZATION["std"]).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.images[i] - self.mean) / self.std, self.masks[i]


def _endless(loader: DataLoader):
    while True:
        yield from loader


def project_loops(model_name: str, encoder: str, device: torch.device, args) -> dict:
    """Training and inference steps of the project's path, and the parameter count."""
    # The reference loop's recipe (cross-entropy, Adam at a constant 1e-4), not the
    # schema's defaults, so that both loops do the same work per step.
    settings = RunSettings(
        model=model_name, hparams=HPARAMS, dates=("bench",), encoder=encoder,
        batch_size=args.batch, loss="bce", optimizer="adam", learning_rate=1e-4,
        weight_decay=0.0, lr_schedule="constant", warmup_epochs=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(settings.spec).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    normalizer = Normalizer(NORMALIZATION, BANDS, device)
    trainer = Trainer(settings, model, device, normalizer, steps_per_epoch=1)
    n = args.batch * 4
    images = torch.rand(n, BANDS, SIZE, SIZE, device=device)
    masks = (torch.rand(n, SIZE, SIZE, device=device) > 0.5).to(torch.uint8)
    tiles = TileTensors(images, masks, torch.zeros(n, BANDS, 2, device=device))
    generator = torch.Generator().manual_seed(0)

    def batch() -> torch.Tensor:
        return torch.randperm(n, generator=generator)[: args.batch].to(device)

    def train() -> None:
        model.train()
        trainer.train_step(tiles[batch()], step=0)

    @torch.inference_mode()
    def infer() -> None:
        model.eval()
        x = normalizer(images[batch()])
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(x)

    return {"params": count_parameters(model), "train": train, "infer": infer}


def reference_loops(model_name: str, encoder: str, device: torch.device, args) -> dict:
    """The same model trained and run the plain way."""
    settings = RunSettings(model=model_name, hparams=HPARAMS, dates=("bench",), encoder=encoder)
    torch.manual_seed(0)
    model = build_model(settings.spec).to(device)
    seg_loss = segmentation_loss("bce", HPARAMS.activation)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    n = args.batch * 4
    data = TileDataset(
        torch.rand(n, BANDS, SIZE, SIZE), (torch.rand(n, SIZE, SIZE) > 0.5).to(torch.uint8)
    )
    batches = _endless(DataLoader(data, batch_size=args.batch, shuffle=True, num_workers=0))

    def train() -> None:
        model.train()
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        mask_logits, aux_logits = model(x)
        loss = seg_loss(mask_logits, y.float()) + 0.4 * auxiliary_loss(aux_logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer() -> None:
        model.eval()
        x, _ = next(batches)
        model(x.to(device))

    return {"train": train, "infer": infer}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--encoder", default="resnet34", help="smp encoder (default resnet34)")
    parser.add_argument("--steps", type=int, default=5, help="timed batches per figure")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = describe_device(device)
    if device.type == "cpu":
        name += f", {platform.processor() or platform.machine()}"
    print(f"Device: {name}; {SIZE}x{SIZE}x{BANDS}, batch {args.batch}, encoder {args.encoder}")
    print(f"median of {args.steps} interleaved steps after {args.warmup} warm-up")
    print(f"torch {torch.__version__}; patches/s, higher is better\n")
    print(
        "| model | parameters | train project | train reference | ratio "
        "| infer project | infer reference | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for model_name in args.models:
        fast = project_loops(model_name, args.encoder, device, args)
        plain = reference_loops(model_name, args.encoder, device, args)
        loops = {
            "train_fast": fast["train"],
            "train_plain": plain["train"],
            "infer_fast": fast["infer"],
            "infer_plain": plain["infer"],
        }
        seconds = _median_step_seconds(device, args.warmup, args.steps, loops)
        train_fast, train_plain = (
            args.batch / seconds["train_fast"],
            args.batch / seconds["train_plain"],
        )
        infer_fast, infer_plain = (
            args.batch / seconds["infer_fast"],
            args.batch / seconds["infer_plain"],
        )
        print(
            f"| {DISPLAY_NAMES[model_name]} | {fast['params'] / 1e6:.1f} M "
            f"| {train_fast:.1f} | {train_plain:.1f} | {train_fast / train_plain:.2f} "
            f"| {infer_fast:.1f} | {infer_plain:.1f} | {infer_fast / infer_plain:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
