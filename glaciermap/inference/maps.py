"""Whole-scene maps: probability and binary mask GeoTIFFs from a predictor."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from glaciermap.inference.geotiff import cog_writer
from glaciermap.inference.scene import SceneBands
from glaciermap.inference.sliding_window import InferenceSettings, Predictor, predict_blocks

log = logging.getLogger(__name__)

MASK_NODATA = 255
# GDAL caches raster blocks up to 5 % of the machine's memory by default; a fixed
# cap keeps the memory of a prediction independent of the machine and the scene
# (a GDAL_CACHEMAX set in the environment wins).
GDAL_CACHE_MB = 256


@dataclass(frozen=True)
class MapSummary:
    """What one scene's prediction produced (for logs and benchmarks)."""

    height: int
    width: int
    valid_pixels: int
    glacier_pixels: int
    seconds: float


def write_maps(
    source: SceneBands,
    predictor: Predictor,
    probability_path: str | Path,
    mask_path: str | Path,
    settings: InferenceSettings,
    threshold: float,
) -> MapSummary:
    """Predict ``source`` and write the probability COG (float32, NaN nodata) and
    the mask COG (uint8 1 = glacier, 0 = not, 255 = nodata), both on the scene grid."""
    grid = {
        "height": source.height,
        "width": source.width,
        "crs": source.crs if source.georeferenced else None,
        "transform": source.transform,
    }
    valid = glacier = 0
    start = time.perf_counter()
    with (
        rasterio.Env(GDAL_CACHEMAX=os.environ.get("GDAL_CACHEMAX", GDAL_CACHE_MB)),
        cog_writer(
            probability_path,
            dtype="float32",
            nodata=float("nan"),
            overview_resampling="average",
            descriptions=("glacier probability",),
            **grid,
        ) as probability_out,
        cog_writer(
            mask_path,
            dtype="uint8",
            nodata=MASK_NODATA,
            overview_resampling="nearest",
            descriptions=(f"glacier (probability >= {threshold:g})",),
            **grid,
        ) as mask_out,
    ):
        for window, proba in predict_blocks(source, predictor, settings):
            nodata = np.isnan(proba)
            mask = (proba >= threshold).astype(np.uint8)
            mask[nodata] = MASK_NODATA
            probability_out.write(proba, 1, window=window)
            mask_out.write(mask, 1, window=window)
            valid += int((~nodata).sum())
            glacier += int((mask == 1).sum())
    seconds = time.perf_counter() - start
    if valid == 0:
        log.warning("the scene has no valid pixel: the maps are all nodata")
    log.info(
        "predicted %dx%d pixels in %.1f s: %d valid, %d glacier (threshold %g)",
        source.height,
        source.width,
        seconds,
        valid,
        glacier,
        threshold,
    )
    return MapSummary(source.height, source.width, valid, glacier, seconds)
