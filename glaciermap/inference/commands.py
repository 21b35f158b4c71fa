"""``glaciermap predict``: the command line of :mod:`glaciermap.inference.maps`.

``glaciermap predict --checkpoint run/best.pt --scene scene.tif --bands
blue=1,green=2,red=3,nir=4 --out out/`` writes ``probability.tif``,
``mask.tif`` and ``outlines.gpkg`` for any GeoTIFF, or for Sentinel-2 L2A band
files (``--product sentinel2_l2a --bands blue=..._B02_10m.jp2,...``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from glaciermap.errors import InputDataError
from glaciermap.inference.maps import MEMORY_FORMAT, MapPaths, write_maps
from glaciermap.inference.provenance import map_provenance
from glaciermap.inference.scene import (
    SceneBands,
    band_names_of,
    parse_band_spec,
)
from glaciermap.inference.settings import BLEND_KINDS, TTA_KINDS, InferenceSettings
from glaciermap.inference.vectorize import vectorize_mask_file
from glaciermap.io import sentinel2
from glaciermap.io.map_layers import LayerName, write_styles
from glaciermap.models.ensemble import CheckpointEnsemble
from glaciermap.utils.atomic import staged_folder
from glaciermap.utils.cli_options import add_radiometry

log = logging.getLogger(__name__)

DEFAULT_BANDS = "blue=1,green=2,red=3,nir=4"
# Everything predict writes into --out: the folder is replaced as one set.
PREDICT_OUTPUTS = (
    "probability.tif",
    "mask.tif",
    "uncertainty.tif",
    "outlines.gpkg",
    "probability.qml",
    "mask.qml",
    "uncertainty.qml",
)
PREDICT_DESCRIPTION = """\
Map glaciers on a scene with a trained checkpoint (its normalisation and band
order are stored in it). Writes OUT/probability.tif and OUT/mask.tif
(Cloud-Optimized GeoTIFFs on the scene's grid), OUT/outlines.gpkg and a QGIS
style (.qml) next to each raster, into a staging folder that replaces OUT as a
whole at the end (an interrupted run leaves the earlier set); each file records
the glaciermap version, the checkpoints with their SHA-256, the threshold and
the scene. With
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
    ensemble = CheckpointEnsemble(args.checkpoint, args.device, args.threshold, MEMORY_FORMAT)
    out = Path(args.out)
    settings = InferenceSettings(
        window=args.window,
        margin=args.margin,
        blend=args.blend,
        batch_size=args.batch_size,
        block_size=args.block_size,
        tta=args.tta,
    )
    several = len(ensemble.members) > 1
    layers: tuple[LayerName, ...] = ("probability", "mask")
    if several:
        layers += ("uncertainty",)
    # Written into a staging folder that replaces --out as a whole at the end.
    with (
        _open_cli_scene(args, ensemble.bands) as source,
        staged_folder(out, PREDICT_OUTPUTS) as stage,
    ):
        write_maps(
            source,
            ensemble.members,
            MapPaths(
                stage / "probability.tif",
                stage / "mask.tif",
                stage / "uncertainty.tif" if several else None,
            ),
            settings,
            ensemble.threshold,
            MEMORY_FORMAT,
            tags=map_provenance(args.checkpoint, ensemble.threshold, source.name),
        )
        vectorize_mask_file(
            stage / "mask.tif",
            stage / "outlines.gpkg",
            min_area_km2=args.min_area_km2,
            date=args.date,
            model=ensemble.model_names,
            run=",".join(map(str, args.checkpoint)),
        )
        write_styles(stage, layers)


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
    add_radiometry(parser, "DN marking nodata (default: none)")
    defaults = InferenceSettings()
    for option, help_text in (
        ("window", "window side, px (multiple of 32; default: the checkpoint's training tile)"),
        ("margin", "overlap of windows, px, blended (default: a quarter of the window)"),
        ("batch_size", "windows per forward pass (default: about a megapixel of windows)"),
        ("block_size", "side of the blocks read and written at a time, px (bounds memory)"),
    ):
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            type=int,
            default=getattr(defaults, option),
            help=help_text,
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
