"""``glaciermap predict`` and the functions the workflow's map scripts call.

``glaciermap predict --checkpoint run/best.pt --scene scene.tif --bands
blue=1,green=2,red=3,nir=4 --out out/`` writes ``probability.tif``,
``mask.tif`` and ``outlines.gpkg`` for any GeoTIFF, or for Sentinel-2 L2A band
files (``--product sentinel2_l2a --bands blue=..._B02_10m.jp2,...``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from glaciermap.errors import InputDataError
from glaciermap.inference.maps import MapPaths, MapSummary, write_maps
from glaciermap.inference.scene import (
    SceneBands,
    band_names_of,
    open_workflow_scene,
    parse_band_spec,
)
from glaciermap.inference.settings import BLEND_KINDS, TTA_KINDS, InferenceSettings
from glaciermap.inference.vectorize import vectorize_mask_file
from glaciermap.io import sentinel2
from glaciermap.models import checkpoint as checkpoints
from glaciermap.models.checkpoint import Predictor
from glaciermap.utils.device import resolve_device

log = logging.getLogger(__name__)

DEFAULT_BANDS = "blue=1,green=2,red=3,nir=4"
# Channels-last convolutions measured faster on the CPU (README, Benchmarks) and
# are the usual fast path of cuDNN.
MEMORY_FORMAT = torch.channels_last
PREDICT_DESCRIPTION = """\
Map glaciers on a scene with a trained checkpoint (its normalisation and band
order are stored in it). Writes OUT/probability.tif and OUT/mask.tif
(Cloud-Optimized GeoTIFFs on the scene's grid) and OUT/outlines.gpkg. With
several --checkpoint (an ensemble, e.g. the seeds of one run) the probability
is the members' mean and OUT/uncertainty.tif holds their standard deviation.
The model predicts --window px windows overlapping by --margin px (blended),
optionally averaged over flipped and rotated copies (--tta). Nodata stays
nodata; a scene smaller than one window is padded with 0; a scene without
georeference is mapped on its pixel grid with a warning (areas in km2 are
then unknown).

examples:
  glaciermap predict --checkpoint run/best.pt --scene scene.tif \\
      --bands blue=1,green=2,red=3,nir=4 --out out/
  glaciermap predict --checkpoint run/best.pt --product sentinel2_l2a --out out/ \\
      --bands blue=GRANULE/.../R10m/T45RVL_..._B02_10m.jp2,green=..._B03_10m.jp2,...
  glaciermap predict --checkpoint seed1/best.pt --checkpoint seed2/best.pt \\
      --checkpoint seed3/best.pt --tta d4 --scene scene.tif --out out/
"""


def load_predictor(checkpoint: str | Path, device: str = "auto") -> Predictor:
    """Load a prediction checkpoint on ``device`` (``auto``: the GPU when there is one)."""
    predictor = checkpoints.load_predictor(
        checkpoint, resolve_device(device, "training.device / --device")
    )
    predictor.model.to(memory_format=MEMORY_FORMAT)
    return predictor


def load_ensemble(paths: Sequence[str | Path], device: str = "auto") -> list[Predictor]:
    """Load one or more checkpoints that share one band layout (an ensemble's members)."""
    if not paths:
        raise InputDataError("predict: no checkpoint given")
    members = [load_predictor(path, device) for path in paths]
    for path, member in zip(paths[1:], members[1:], strict=True):
        if member.bands != members[0].bands:
            raise InputDataError(
                f"{path}: band layout {member.bands} differs from {paths[0]} "
                f"{members[0].bands}; an ensemble's members must share one"
            )
    return members


def settings_from_config(inference: Mapping[str, Any]) -> InferenceSettings:
    """The ``inference:`` config section as :class:`InferenceSettings`."""
    return InferenceSettings.from_config(inference)


def ensemble_threshold(
    configured: float | None, members: Sequence[Predictor], names: Sequence[str | Path]
) -> float:
    """The configured threshold, else the one stored with the checkpoints (all the same)."""
    if configured is not None:
        return float(configured)
    stored = sorted({float(member.threshold) for member in members})
    if len(stored) > 1:
        raise InputDataError(
            f"checkpoints {', '.join(map(str, names))} store different thresholds "
            f"{stored}: set inference.threshold (--threshold)"
        )
    return stored[0]


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
    members = load_ensemble(paths, device)
    with open_workflow_scene(scene, members[0].bands) as source:
        return write_maps(
            source,
            members,
            MapPaths(
                Path(probability_path),
                Path(mask_path),
                Path(uncertainty_path) if uncertainty_path is not None else None,
            ),
            settings_from_config(inference),
            ensemble_threshold(inference.get("threshold"), members, paths),
            MEMORY_FORMAT,
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
    members = load_ensemble(args.checkpoint, args.device)
    out = Path(args.out)
    settings = InferenceSettings(
        window=args.window,
        margin=args.margin,
        blend=args.blend,
        batch_size=args.batch_size,
        block_size=args.block_size,
        tta=args.tta,
    )
    threshold = ensemble_threshold(args.threshold, members, args.checkpoint)
    ensemble = len(members) > 1
    with _open_cli_scene(args, members[0].bands) as source:
        write_maps(
            source,
            members,
            MapPaths(
                out / "probability.tif",
                out / "mask.tif",
                out / "uncertainty.tif" if ensemble else None,
            ),
            settings,
            threshold,
            MEMORY_FORMAT,
        )
    vectorize_mask_file(
        out / "mask.tif",
        out / "outlines.gpkg",
        min_area_km2=args.min_area_km2,
        date=args.date,
        model="+".join(dict.fromkeys(member.spec.name for member in members)),
        run=",".join(map(str, args.checkpoint)),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="map glaciers on a scene with a trained checkpoint",
        description=PREDICT_DESCRIPTION,
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        help="best.pt of a run; give it several times for an ensemble (mean probability, "
        "and uncertainty.tif: the members' standard deviation)",
    )
    parser.add_argument("--scene", help="a GeoTIFF (or any GDAL raster) holding the bands")
    parser.add_argument(
        "--bands",
        help="NAME=INDEX (in --scene) or NAME=FILE[:INDEX], comma separated (default: the "
        f"scene's band descriptions, else {DEFAULT_BANDS})",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--product",
        choices=["generic", "sentinel2_l2a"],
        default="generic",
        help="generic: reflectance = (DN + --offset) * --scale; sentinel2_l2a: the L2A "
        "quantification and the offset of its processing baseline",
    )
    parser.add_argument(
        "--processing-baseline",
        help="Sentinel-2 processing baseline, e.g. 05.09 (default: read from the file names)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generic: (DN + offset) * scale, per DN"
    )
    parser.add_argument(
        "--offset", type=float, default=0.0, help="generic: added to the DN before --scale, DN"
    )
    parser.add_argument(
        "--nodata", type=float, default=None, help="DN marking nodata (default: none)"
    )
    defaults = InferenceSettings()
    parser.add_argument(
        "--window",
        type=int,
        default=defaults.window,
        help="window side, px (multiple of 32; default: the checkpoint's training tile)",
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=defaults.margin,
        help="overlap of windows, px, blended (default: a quarter of the window)",
    )
    parser.add_argument(
        "--blend",
        choices=BLEND_KINDS,
        default=defaults.blend,
        help="weights that cross-fade overlapping windows",
    )
    parser.add_argument(
        "--tta", choices=TTA_KINDS, default=defaults.tta, help="test-time augmentation"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="windows per forward pass (default: about a megapixel of windows)",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=defaults.block_size,
        help="side of the blocks read and written at a time, px (bounds memory)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="glacier probability threshold, 0-1 (default: the checkpoint's threshold)",
    )
    parser.add_argument(
        "--min-area-km2",
        type=float,
        default=0.01,
        help="outlines smaller than this are left out of outlines.gpkg, km2",
    )
    parser.add_argument("--date", default="", help="date label written into the outlines")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the model runs (auto: the GPU when there is one)",
    )
    parser.set_defaults(func=predict_command)
