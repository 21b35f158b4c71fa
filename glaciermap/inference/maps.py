"""Whole-scene maps: probability, mask (and an ensemble's uncertainty) GeoTIFFs.

:func:`predict_scene_maps` is what the map rules (``maps_predict``,
``maps_ensemble``) call; :func:`write_maps` is the engine under it and under
``glaciermap predict``.

The model's output is written by a writer thread while the model predicts the
next blocks; the rasters are published as COGs at the end (all or nothing).
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from glaciermap.data.normalization import degenerate_reason
from glaciermap.errors import InputDataError
from glaciermap.inference.geotiff import cog_writer
from glaciermap.inference.provenance import map_provenance
from glaciermap.inference.scene import SceneBands, open_workflow_scene
from glaciermap.inference.settings import InferenceSettings
from glaciermap.inference.sliding_window import BlockPrediction, Predictor, predict_blocks
from glaciermap.io.map_layers import LAYERS
from glaciermap.models.ensemble import CheckpointEnsemble, mean_and_spread
from glaciermap.utils.atomic import staged_files

log = logging.getLogger(__name__)

MASK_NODATA = 255
# GDAL caches raster blocks up to 5 % of the machine's memory by default; a fixed
# cap keeps the memory of a prediction independent of the machine and the scene
# (a GDAL_CACHEMAX set in the environment wins).
GDAL_CACHE_MB = 256
# finished blocks queued for the writer thread at most (bounds memory)
WRITE_QUEUE = 2
# Channels-last convolutions measured faster on the CPU (README, Benchmarks) and
# are the usual fast path of cuDNN.
MEMORY_FORMAT = torch.channels_last


@dataclass(frozen=True)
class MapPaths:
    """Where the maps go; ``uncertainty`` (needed for two or more members) may be None."""

    probability: Path
    mask: Path
    uncertainty: Path | None = None


@dataclass(frozen=True)
class MapSummary:
    """What one scene's prediction produced (for logs and benchmarks)."""

    height: int
    width: int
    valid_pixels: int
    glacier_pixels: int
    seconds: float
    members: int = 1


class _BlockWriter:
    """Writes finished blocks into the open rasters and counts pixels (one thread)."""

    def __init__(self, outputs: dict[str, rasterio.io.DatasetWriter], threshold: float) -> None:
        self.outputs = outputs
        self.threshold = threshold
        self.valid = 0
        self.glacier = 0

    def __call__(self, block: BlockPrediction) -> None:
        probability, spread = mean_and_spread(block.probabilities)
        nodata = np.isnan(probability)
        mask = (probability >= self.threshold).astype(np.uint8)
        mask[nodata] = MASK_NODATA
        self.outputs["probability"].write(probability, 1, window=block.window)
        self.outputs["mask"].write(mask, 1, window=block.window)
        if "uncertainty" in self.outputs:
            self.outputs["uncertainty"].write(spread, 1, window=block.window)
        self.valid += int((~nodata).sum())
        self.glacier += int((mask == 1).sum())


def write_maps(
    source: SceneBands,
    predictors: Sequence[Predictor],
    paths: MapPaths,
    settings: InferenceSettings,
    threshold: float,
    memory_format: torch.memory_format = torch.contiguous_format,
    tags: Mapping[str, str] | None = None,
) -> MapSummary:
    """Predict ``source`` with one model or the mean of an ensemble and write COGs.

    ``probability`` (float32, NaN nodata), ``mask`` (uint8 1 = glacier, 0 =
    not, 255 = nodata, from the probability at ``threshold``) and, where
    ``paths.uncertainty`` is given (required for two or more members),
    ``uncertainty`` (float32, the members' standard deviation), all on the scene grid.
    ``tags`` (the maps' provenance, :mod:`glaciermap.inference.provenance`) go
    into every raster.
    """
    members = len(predictors)
    if members > 1 and paths.uncertainty is None:
        raise ValueError("an ensemble needs an uncertainty path")
    reason = degenerate_reason(source, source.bands)
    if reason is not None:  # before any output is opened: nothing is written
        raise InputDataError(f"scene {source.name}: {reason}; not mapped")
    grid = {
        "height": source.height,
        "width": source.width,
        "crs": source.crs if source.georeferenced else None,
        "transform": source.transform,
    }
    layers = {
        "probability": (
            paths.probability,
            "float32",
            float("nan"),
            "average",
            "glacier probability",
        ),
        "mask": (
            paths.mask,
            "uint8",
            MASK_NODATA,
            "nearest",
            f"glacier (probability >= {threshold:g})",
        ),
    }
    if paths.uncertainty is not None:  # an ensemble of one has zero spread
        layers["uncertainty"] = (
            paths.uncertainty,
            "float32",
            float("nan"),
            "average",
            f"standard deviation of {members} members' glacier probability",
        )
    start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(
            rasterio.Env(GDAL_CACHEMAX=os.environ.get("GDAL_CACHEMAX", GDAL_CACHE_MB))
        )
        outputs = {
            name: stack.enter_context(
                cog_writer(
                    path,
                    dtype=dtype,
                    nodata=nodata,
                    overview_resampling=resampling,
                    descriptions=(text,),
                    layer=LAYERS[name],  # units, colour table, class names
                    tags=tags,
                    **grid,
                )
            )
            for name, (path, dtype, nodata, resampling, text) in layers.items()
        }
        writer = _BlockWriter(outputs, threshold)
        with ThreadPoolExecutor(1, thread_name_prefix="glaciermap-write") as pool:
            pending: collections.deque[Future] = collections.deque()
            try:
                for block in predict_blocks(source, predictors, settings, memory_format):
                    pending.append(pool.submit(writer, block))
                    while len(pending) > WRITE_QUEUE or (pending and pending[0].done()):
                        pending.popleft().result()  # re-raises a write error here
                while pending:
                    pending.popleft().result()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    seconds = time.perf_counter() - start
    if writer.valid == 0:
        log.warning("the scene has no valid pixel: the maps are all nodata")
    log.info(
        "predicted %dx%d pixels with %d member(s) in %.1f s: %d valid, %d glacier (threshold %g)",
        source.height,
        source.width,
        members,
        seconds,
        writer.valid,
        writer.glacier,
        threshold,
    )
    return MapSummary(source.height, source.width, writer.valid, writer.glacier, seconds, members)


def predict_scene_maps(
    checkpoint: str | Path | Sequence[str | Path],
    scene: str | Path,
    probability_path: str | Path,
    mask_path: str | Path,
    inference: Mapping[str, Any],
    device: str = "auto",
    uncertainty_path: str | Path | None = None,
) -> MapSummary:
    """Rules ``maps_predict`` and ``maps_ensemble``: a workflow scene to maps.

    One checkpoint writes probability and mask; several (an ensemble) write their
    mean probability, its mask, and the members' standard deviation to
    ``uncertainty_path``.
    """
    paths = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
    ensemble = CheckpointEnsemble(paths, device, inference.get("threshold"), MEMORY_FORMAT)
    targets = [probability_path, mask_path, *([uncertainty_path] if uncertainty_path else [])]
    with (
        open_workflow_scene(scene, ensemble.bands) as source,
        staged_files(targets) as staged,
    ):
        return write_maps(
            source,
            ensemble.members,
            MapPaths(staged[0], staged[1], staged[2] if len(staged) > 2 else None),
            InferenceSettings.from_config(inference),
            ensemble.threshold,
            MEMORY_FORMAT,
            tags=map_provenance(paths, ensemble.threshold, str(scene)),
        )
