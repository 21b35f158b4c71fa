"""Whole-scene prediction against the bare model, side by side, on one generated scene.

Generates a 4-band float32 scene (10 m pixels, UTM) of ``--size`` pixels a side
and randomly initialised checkpoints, then, for each setting (the old defaults:
128-px windows at overlap 0.5 and 0, 1024-px windows, and the new default of
``InferenceSettings``: the training tile with a quarter-tile margin), times:

- the bare model: forward passes only, on a pre-cut batch of the setting's
  windows (``Predictor.predict_proba``, so normalisation included), before and
  after the pipeline run; the faster of the two is the reference (on a shared
  machine the load drifts, and a slow figure would flatter the pipeline);
- the pipeline: ``write_maps`` from the scene file to the probability and mask
  COGs (reading, windows, blending, writing, COG publishing).

It prints megapixels/s of the scene, the pipeline as a fraction of the bare
model (scene pixels, and window pixels: the pipeline's own overhead), an
ensemble of ``--ensemble`` members against one model, the bare model in both
memory layouts, and, with ``--memory-sizes``, the peak memory of a fresh
process predicting a scene of each size. Nothing is downloaded. Example::

    python benchmarks/predict_throughput.py --size 2048 --threads 2 --memory-sizes 2048 8192
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from glaciermap.inference.maps import MEMORY_FORMAT, MapPaths, write_maps
from glaciermap.inference.scene import open_workflow_scene
from glaciermap.inference.settings import InferenceSettings
from glaciermap.inference.windows import plan_windows
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.ensemble import CheckpointEnsemble
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import DISPLAY_NAMES, HParams
from glaciermap.utils.device import resolve_device

PIXEL_M = 10.0
BANDS = ("blue", "green", "red", "nir")
NORMALIZATION = {"mean": [0.5] * 4, "std": [0.29] * 4}


def device_name(device: torch.device) -> str:
    """The CUDA card, or the CPU model name and torch's thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def write_scene(path: Path, size: int, block: int = 1024) -> None:
    """A random 4-band reflectance scene, written by blocks."""
    rng = np.random.default_rng(0)
    profile = dict(
        driver="GTiff",
        height=size,
        width=size,
        count=4,
        dtype="float32",
        nodata=float("nan"),
        crs="EPSG:32645",
        transform=Affine(PIXEL_M, 0, 478000, 0, -PIXEL_M, 3108140),
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with rasterio.open(path, "w", **profile) as out:
        out.descriptions = BANDS
        for row in range(0, size, block):
            for col in range(0, size, block):
                h, w = min(block, size - row), min(block, size - col)
                window = rasterio.windows.Window(col, row, w, h)
                out.write(rng.uniform(0.0, 1.0, (4, h, w)).astype(np.float32), window=window)


def write_checkpoint(path: Path, args: argparse.Namespace, seed: int) -> None:
    torch.manual_seed(seed)
    spec = ModelSpec(args.model, HParams(0.5, "sigmoid", "mean"), encoder=args.encoder)
    save_prediction_checkpoint(path, build_model(spec), spec, NORMALIZATION, args.tile_size, 0.5)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, call: Callable[[], object]) -> float:
    _sync(device)
    start = time.perf_counter()
    call()
    _sync(device)
    return time.perf_counter() - start


def bare_rate(predictor, window: tuple[int, int], batch: int, repeats: int, fmt) -> float:
    """Megapixels/s of ``predict_proba`` on one pre-cut batch on the device (median)."""
    device = predictor.device
    x = torch.rand(batch, 4, *window, device=device).contiguous(memory_format=fmt)

    def forward() -> None:
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"),
        ):
            predictor.predict_proba(x)

    forward()  # warm-up: first-call costs out of the figure
    seconds = statistics.median(timed(device, forward) for _ in range(repeats))
    return batch * window[0] * window[1] / 1e6 / seconds


class ModelClock(dict):
    """Seconds spent in each member's ``predict_proba`` (wraps them in place)."""

    def __init__(self, members) -> None:
        super().__init__()
        self.members = list(members)
        for i, member in enumerate(members):
            original = member.predict_proba

            def clocked(x, original=original, i=i, device=member.device):
                start = time.perf_counter()
                y = original(x)
                _sync(device)
                self[i] = self.get(i, 0.0) + time.perf_counter() - start
                return y

            member.predict_proba = clocked

    def remove(self) -> None:
        """Give the members their own ``predict_proba`` back."""
        for member in self.members:
            del member.predict_proba


def run_pipeline(scene: Path, predictors, settings: InferenceSettings, out: Path) -> float:
    device = predictors[0].device
    with open_workflow_scene(scene, predictors[0].bands) as source:
        paths = MapPaths(out / "p.tif", out / "m.tif", out / "u.tif")
        return timed(
            device, lambda: write_maps(source, predictors, paths, settings, 0.5, MEMORY_FORMAT)
        )


def settings_table(args: argparse.Namespace) -> dict[str, InferenceSettings]:
    # The new default resolved for the checkpoint: its training tile, a quarter margin.
    default = InferenceSettings().for_tile(args.tile_size)
    if args.batch_size:
        default = replace(default, batch_size=args.batch_size)
    old = dict(blend="gaussian", batch_size=32, block_size=2048)
    large = InferenceSettings(window=1024, margin=64).for_tile(args.tile_size)
    return {
        "old default: 128 px, overlap 0.5": InferenceSettings(window=128, margin=64, **old),
        "old: 128 px, overlap 0": InferenceSettings(window=128, margin=0, **old),
        "large windows: 1024 px, margin 64": large,
        f"new default: {default.window} px, margin {default.margin}": default,
    }


def rss_mb(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB (Linux), None elsewhere.

    Not ``ru_maxrss``: after fork and exec it still holds the parent's size.
    """
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def memory_child(scene: Path, checkpoint: Path, settings: InferenceSettings, device: str) -> None:
    """Run in a fresh process: peak memory of predicting ``scene``."""
    (predictor,) = CheckpointEnsemble([checkpoint], device, memory_format=MEMORY_FORMAT).members
    loaded = rss_mb("VmRSS")
    seconds = run_pipeline(scene, [predictor], settings, scene.parent)
    peak = rss_mb("VmHWM")
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({"loaded_mb": loaded, "peak_mb": peak, "seconds": seconds, "gpu_mb": gpu}))


def memory_rows(args: argparse.Namespace, checkpoint: Path, folder: Path) -> list[dict]:
    rows = []
    for size in args.memory_sizes:
        sub = folder / f"memory{size}"
        sub.mkdir()
        write_scene(sub / "scene.tif", size)
        command = [sys.executable, __file__, "--memory-child", str(sub / "scene.tif")]
        command += ["--checkpoint", str(checkpoint), "--device", args.device]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        plan = plan_windows(size, size, list(settings_table(args).values())[-1])
        row["window"] = [plan.window_height, plan.window_width]
        rows.append({"size": size, **row})
        (sub / "scene.tif").unlink()
        print(
            f"scene {size} x {size} ({row['window'][0]} px windows): peak memory "
            f"{row['peak_mb']:.0f} MB (after loading the "
            f"model: {row['loaded_mb'] or float('nan'):.0f} MB), "
            f"{size**2 / 1e6 / row['seconds']:.3f} Mpx/s"
            + (f", GPU peak {row['gpu_mb']:.0f} MB" if row["gpu_mb"] else ""),
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="scene side in pixels")
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--tile-size", type=int, default=128, help="training tile (stored)")
    parser.add_argument("--batch-size", type=int, help="windows per batch of the new default")
    parser.add_argument("--repeats", type=int, default=3, help="timed bare batches")
    parser.add_argument("--ensemble", type=int, default=3, help="members of the ensemble run")
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[], help="scene sides")
    parser.add_argument(
        "--memory-only", action="store_true", help="only the peak memory per --memory-sizes"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        default = list(settings_table(args).values())[-1]
        memory_child(args.memory_child, args.checkpoint, default, args.device)
        return
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = f"{DISPLAY_NAMES.get(args.model, args.model)}/{args.encoder}"
    results: dict = {"device": device_name(device), "model": name, "scene": args.size, "runs": []}
    print(
        f"{results['device']}; torch {torch.__version__}; {name}, training tile "
        f"{args.tile_size}; generated scene {args.size} x {args.size} px of {PIXEL_M:g} m",
        flush=True,
    )
    megapixels = args.size**2 / 1e6
    if args.memory_only:
        with tempfile.TemporaryDirectory() as tmp:
            write_checkpoint(Path(tmp) / "member0.pt", args, 0)
            print(f"\npeak memory of a fresh process at {list(settings_table(args).values())[-1]}:")
            results["memory"] = memory_rows(args, Path(tmp) / "member0.pt", Path(tmp))
        write_json(args.json, results)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_scene(folder / "scene.tif", args.size)
        for seed in range(max(1, args.ensemble)):
            write_checkpoint(folder / f"member{seed}.pt", args, seed)
        paths = [folder / f"member{i}.pt" for i in range(max(1, args.ensemble))]
        members = CheckpointEnsemble(paths, args.device, memory_format=MEMORY_FORMAT).members
        one = members[:1]
        print(
            "\n| setting | window px | windows | batch | bare model Mpx/s | pipeline s "
            "| scene Mpx/s | scene / bare | window px / bare |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        table = settings_table(args)
        default = list(table.values())[-1]
        for label, settings in table.items():
            plan = plan_windows(args.size, args.size, settings)
            window = (plan.window_height, plan.window_width)
            batch = settings.batch_size
            before = bare_rate(one[0], window, batch, args.repeats, MEMORY_FORMAT)
            seconds = run_pipeline(folder / "scene.tif", one, settings, folder)
            after = bare_rate(one[0], window, batch, args.repeats, MEMORY_FORMAT)
            bare = max(before, after)
            window_mpx = plan.n_windows * window[0] * window[1] / 1e6
            run = {
                "setting": label,
                "window": list(window),
                "windows": plan.n_windows,
                "batch": batch,
                "bare_mpx_s": bare,
                "bare_before_after": [before, after],
                "seconds": seconds,
                "scene_mpx_s": megapixels / seconds,
                "scene_fraction": megapixels / seconds / bare,
                "window_fraction": window_mpx / seconds / bare,
            }
            results["runs"].append(run)
            print(
                f"| {label} | {window[0]}x{window[1]} | {plan.n_windows} | {batch} "
                f"| {bare:.3f} | {seconds:.1f} | {run['scene_mpx_s']:.3f} "
                f"| {run['scene_fraction']:.0%} | {run['window_fraction']:.0%} |",
                flush=True,
            )
        if args.ensemble > 1:
            plan = plan_windows(args.size, args.size, default)
            for member in members[1:]:  # first-call costs of each member out of the timing
                window = (plan.window_height, plan.window_width)
                bare_rate(member, window, default.batch_size, 1, MEMORY_FORMAT)
            compute = ModelClock(members)
            times: dict[int, list[float]] = {1: [], args.ensemble: []}
            computes: dict[int, list[float]] = {1: [], args.ensemble: []}
            for _ in range(2):  # interleaved: both see the same machine load
                for n in times:
                    compute.clear()
                    times[n].append(
                        run_pipeline(folder / "scene.tif", members[:n], default, folder)
                    )
                    computes[n].append(sum(compute.values()))
            single, several = (statistics.median(times[n]) for n in times)
            single_model = statistics.median(computes[1])
            ratio = several / (args.ensemble * single)
            over_compute = several / (args.ensemble * single_model)
            results["ensemble"] = {
                "members": args.ensemble,
                "one": single,
                "all": several,
                "one_model_compute": single_model,
                "all_model_compute": statistics.median(computes[args.ensemble]),
            }
            print(
                f"\nensemble of {args.ensemble} at the new default (median of 2, interleaved): "
                f"{several:.1f} s; one model {single:.1f} s, of which {single_model:.1f} s in the "
                f"model: {ratio:.2f} x {args.ensemble} x one model's time, {over_compute:.2f} x "
                f"{args.ensemble} x one model's compute"
            )
            compute.remove()
        plan = plan_windows(args.size, args.size, default)
        window = (plan.window_height, plan.window_width)
        print(f"\nbare model, {window[0]}x{window[1]} windows, batch {default.batch_size}:")
        for fmt_name, fmt in (
            ("contiguous", torch.contiguous_format),
            ("channels-last", torch.channels_last),
        ):
            members[0].model.to(memory_format=fmt)
            rate = bare_rate(members[0], window, default.batch_size, args.repeats, fmt)
            results[f"bare_{fmt_name}"] = rate
            print(f"  {fmt_name}: {rate:.3f} Mpx/s", flush=True)
        members[0].model.to(memory_format=MEMORY_FORMAT)
        if args.memory_sizes:
            print(f"\npeak memory of a fresh process at the new default ({default}):")
            results["memory"] = memory_rows(args, folder / "member0.pt", folder)
    write_json(args.json, results)


def write_json(path: str | None, results: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
