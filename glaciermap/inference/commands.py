"""``glaciermap predict`` and the functions the workflow's map scripts call.

``glaciermap predict --checkpoint run/best.pt --scene scene.tif --bands
blue=1,green=2,red=3,nir=4 --out out/`` writes ``probability.tif``,
``mask.tif`` and ``outlines.gpkg`` for any GeoTIFF, or for Sentinel-2 L2A band
files (``--product sentinel2_l2a --bands blue=..._B02_10m.jp2,...``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import rasterio

from glaciermap.errors import InputDataError
from glaciermap.inference.areas import AREA_COLUMNS, MaskEntry, area_change, area_table
from glaciermap.inference.change_figure import change_figure
from glaciermap.inference.maps import MapSummary, write_maps
from glaciermap.inference.scene import (
    SceneBands,
    band_names_of,
    open_workflow_scene,
    parse_band_spec,
)
from glaciermap.inference.sliding_window import WINDOW_KINDS, InferenceSettings
from glaciermap.inference.vectorize import outline_area_km2, vectorize_mask_file
from glaciermap.io import sentinel2
from glaciermap.io.outlines import read_outlines
from glaciermap.models import checkpoint as checkpoints
from glaciermap.models.checkpoint import Predictor
from glaciermap.runs import RunKey
from glaciermap.utils.atomic import atomic_path
from glaciermap.utils.device import resolve_device

log = logging.getLogger(__name__)

DEFAULT_BANDS = "blue=1,green=2,red=3,nir=4"
PREDICT_DESCRIPTION = """\
Map glaciers on a scene with a trained checkpoint (its normalisation, band
order and tile size are stored in it). Writes OUT/probability.tif and
OUT/mask.tif (Cloud-Optimized GeoTIFFs on the scene's grid) and
OUT/outlines.gpkg. Nodata stays nodata; a scene smaller than one tile is
padded with 0; a scene without georeference is mapped on its pixel grid with
a warning (areas in km2 are then unknown).

examples:
  glaciermap predict --checkpoint run/best.pt --scene scene.tif \\
      --bands blue=1,green=2,red=3,nir=4 --out out/
  glaciermap predict --checkpoint run/best.pt --product sentinel2_l2a --out out/ \\
      --bands blue=GRANULE/.../R10m/T45RVL_..._B02_10m.jp2,green=..._B03_10m.jp2,...
"""


def load_predictor(checkpoint: str | Path, device: str = "auto") -> Predictor:
    """Load a prediction checkpoint on ``device`` (``auto``: the GPU when there is one)."""
    return checkpoints.load_predictor(
        checkpoint, resolve_device(device, "training.device / --device")
    )


def settings_from_config(inference: Mapping[str, Any]) -> InferenceSettings:
    """The ``inference:`` config section as :class:`InferenceSettings`."""
    keys = ("overlap", "window", "batch_size", "block_size")
    return InferenceSettings(**{k: inference[k] for k in keys if k in inference})


def _threshold(configured: float | None, predictor: Predictor) -> float:
    """The configured threshold, else the one stored with the checkpoint."""
    return float(configured if configured is not None else predictor.threshold)


def predict_scene_maps(
    checkpoint: str | Path,
    scene: str | Path,
    probability_path: str | Path,
    mask_path: str | Path,
    inference: Mapping[str, Any],
    device: str = "auto",
) -> MapSummary:
    """Rule ``maps_predict``: a workflow scene (``results/scenes/{date}.tif``) to maps."""
    predictor = load_predictor(checkpoint, device)
    with open_workflow_scene(scene, predictor.bands) as source:
        predictor.prepare(source)
        return write_maps(
            source,
            predictor,
            probability_path,
            mask_path,
            settings_from_config(inference),
            _threshold(inference.get("threshold"), predictor),
        )


def write_area_tables(
    maps: Sequence[Mapping[str, str]],
    reference: Mapping[str, str | Path],
    date_order: Sequence[str],
    areas_path: str | Path,
    change_path: str | Path,
    *,
    regions_path: str | Path | None = None,
    glaciers: gpd.GeoDataFrame | None = None,
    block_size: int = 2048,
) -> None:
    """Rule ``maps_areas``: area per date of the predicted maps and of the reference
    masks ({date: mask}) per zone, and their change between consecutive dates.

    ``maps`` holds one record per run and date: ``run``, ``date``, ``mask`` and
    optionally ``outlines`` (its outlines.gpkg), which adds a row of source
    ``outlines``: the summed area of the vector outlines over the scene, i.e.
    the predicted area without the specks below ``min_area_km2``.
    """
    entries = [
        MaskEntry(m["run"], RunKey.parse(m["run"]).model, "predicted", m["date"], Path(m["mask"]))
        for m in maps
    ]
    entries += [
        MaskEntry("reference", "reference", "reference", date, Path(path))
        for date, path in reference.items()
    ]
    areas = area_table(entries, regions_path=regions_path, glaciers=glaciers, block_size=block_size)
    outline_rows = [
        (m["run"], RunKey.parse(m["run"]).model, "outlines", m["date"], "scene", "all",
         outline_area_km2(m["outlines"]))
        for m in maps
        if m.get("outlines")
    ]  # fmt: skip
    if outline_rows:
        areas = pd.concat(
            [areas, pd.DataFrame(outline_rows, columns=AREA_COLUMNS)], ignore_index=True
        )
    change = area_change(areas, date_order)
    with atomic_path(areas_path) as tmp:
        areas.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(change_path) as tmp:
        change.to_csv(tmp, index=False, float_format="%.6f")
    log.info("%d area rows, %d change rows", len(areas), len(change))


def run_change_figure(
    scene: str | Path,
    masks: Sequence[str | Path],
    outlines: Sequence[str | Path],
    dates: Sequence[str],
    out: str | Path,
    run: str,
) -> None:
    """Rule ``maps_change_figure``: a run's first and last date over the last date's image."""
    change_figure(scene, masks, dates, out, title=run, outlines=outlines)


def reference_glaciers(
    outlines: Mapping[str, Any], acquired: str, crs_of: str | Path
) -> gpd.GeoDataFrame:
    """The configured reference outlines (``data.outlines``), one row per glacier id,
    nearest analysis to ``acquired`` (YYYY-MM-DD), in the CRS of raster ``crs_of``."""
    with rasterio.open(crs_of) as dataset:
        crs = dataset.crs
    return read_outlines(
        outlines["file"],
        dt.date.fromisoformat(acquired),
        crs,
        layer=outlines.get("layer"),
        fmt=outlines.get("format", "auto"),
        glaciers=outlines.get("glaciers"),
    )


# ---------------------------------------------------------------- command line


def _open_cli_scene(args: argparse.Namespace, bands: Sequence[str]) -> SceneBands:
    spec = args.bands
    if spec is None:
        if args.scene is None:
            raise InputDataError("predict: give --scene, or --bands with one file per band")
        names = band_names_of(args.scene)
        spec = (
            ",".join(f"{n}={i}" for i, n in enumerate(names, start=1)) if names else DEFAULT_BANDS
        )
        log.info("bands: %s", spec)
    refs = parse_band_spec(spec, args.scene)
    if args.product == "sentinel2_l2a":
        first = refs[next(iter(refs))].path
        baseline = args.processing_baseline or sentinel2.baseline_from_name(first)
        if baseline is None:
            raise InputDataError(
                f"--processing-baseline not given and not found in the file name {first}"
            )
        return SceneBands(
            refs,
            bands,
            scale=1.0 / sentinel2.QUANTIFICATION_VALUE,
            offset=sentinel2.reflectance_offset(baseline),
            nodata=sentinel2.NODATA_DN,
        )
    return SceneBands(refs, bands, scale=args.scale, offset=args.offset, nodata=args.nodata)


def predict_command(args: argparse.Namespace) -> None:
    predictor = load_predictor(args.checkpoint, args.device)
    out = Path(args.out)
    settings = InferenceSettings(args.overlap, args.window, args.batch_size, args.block_size)
    with _open_cli_scene(args, predictor.bands) as source:
        predictor.prepare(source)
        write_maps(
            source,
            predictor,
            out / "probability.tif",
            out / "mask.tif",
            settings,
            _threshold(args.threshold, predictor),
        )
    vectorize_mask_file(
        out / "mask.tif",
        out / "outlines.gpkg",
        min_area_km2=args.min_area_km2,
        date=args.date,
        model=predictor.spec.name,
        run=str(args.checkpoint),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="map glaciers on a scene with a trained checkpoint",
        description=PREDICT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="best.pt of a run")
    parser.add_argument("--scene", help="a GeoTIFF (or any GDAL raster) holding the bands")
    parser.add_argument(
        "--bands",
        help="NAME=INDEX (in --scene) or NAME=FILE[:INDEX], comma separated; default: the "
        f"scene's band descriptions, else {DEFAULT_BANDS}",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--product", choices=["generic", "sentinel2_l2a"], default="generic")
    parser.add_argument("--processing-baseline", help="Sentinel-2 baseline, e.g. 05.09")
    parser.add_argument("--scale", type=float, default=1.0, help="generic: (DN + offset) * scale")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--nodata", type=float, default=None, help="DN marking nodata")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--window", choices=WINDOW_KINDS, default="gaussian")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument(
        "--threshold", type=float, default=None, help="default: the checkpoint's threshold"
    )
    parser.add_argument("--min-area-km2", type=float, default=0.01)
    parser.add_argument("--date", default="", help="date label written into the outlines")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.set_defaults(func=predict_command)
