"""Throughput of whole-scene inference: km2/s and megapixels/s, with and without overlap.

Generates a 4-band float32 scene (10 m pixels, UTM) of ``--size`` pixels a side
and a randomly initialised checkpoint, then times ``write_maps`` (reading by
blocks, blended sliding windows, probability and mask COGs) for each overlap.
Nothing is downloaded. Example::

    python benchmarks/predict_throughput.py --size 2048 --overlaps 0 0.5
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from glaciermap.inference.commands import load_predictor
from glaciermap.inference.maps import write_maps
from glaciermap.inference.scene import open_workflow_scene
from glaciermap.inference.sliding_window import InferenceSettings
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams
from glaciermap.utils.device import resolve_device

PIXEL_M = 10.0
BANDS = ("blue", "green", "red", "nir")


def device_name(device: torch.device) -> str:
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
    """A smooth random 4-band scene, written by blocks."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="scene side in pixels")
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--window", default="gaussian")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    results = {
        "device": device_name(device),
        "model": f"{args.model}/{args.encoder}",
        "scene_pixels": f"{args.size}x{args.size}",
        "tile_size": args.tile_size,
        "runs": [],
    }
    print(
        f"device {results['device']}; model {results['model']}; scene {args.size}x{args.size}"
        f" px of {PIXEL_M:g} m; tile {args.tile_size}; batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_scene(folder / "scene.tif", args.size)
        spec = ModelSpec(args.model, HParams(0.5, "sigmoid", "mean"), encoder=args.encoder)
        stats = {"mean": [0.5] * 4, "std": [0.29] * 4}
        save_prediction_checkpoint(
            folder / "best.pt", build_model(spec), spec, stats, args.tile_size, 0.5
        )
        predictor = load_predictor(folder / "best.pt", args.device)
        warm_up = torch.zeros(args.batch_size, 4, args.tile_size, args.tile_size)
        predictor.predict_proba(warm_up.to(predictor.device))  # first-call costs out of timing
        megapixels = args.size**2 / 1e6
        km2 = args.size**2 * PIXEL_M**2 / 1e6
        for overlap in args.overlaps:
            settings = InferenceSettings(overlap, args.window, args.batch_size, args.block_size)
            with open_workflow_scene(folder / "scene.tif", predictor.bands) as source:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                write_maps(source, predictor, folder / "p.tif", folder / "m.tif", settings, 0.5)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            run = {
                "overlap": overlap,
                "seconds": round(seconds, 2),
                "km2_per_s": round(km2 / seconds, 2),
                "megapixels_per_s": round(megapixels / seconds, 3),
            }
            results["runs"].append(run)
            print(
                f"overlap {overlap:.2f}: {seconds:8.1f} s  {run['km2_per_s']:9.2f} km2/s  "
                f"{run['megapixels_per_s']:8.3f} MP/s"
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_rss_mb"] = round(peak_mb)
    print(f"peak memory of the process (model included): {peak_mb:.0f} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
