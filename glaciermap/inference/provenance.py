"""What made a map, recorded in every map GeoTIFF (tags) and outline GeoPackage (layer metadata).

A folder of maps is replaced as a set (:func:`glaciermap.utils.atomic.staged_folder`);
these fields let anyone check that a probability map, its mask and its outlines
came from one run: the glaciermap version, the checkpoint file(s) with their
SHA-256, the threshold and the scene.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from glaciermap import __version__
from glaciermap.utils.digest import file_sha256

FIELDS = ("glaciermap_version", "checkpoints", "checkpoints_sha256", "threshold", "scene")


def map_provenance(
    checkpoints: Sequence[str | os.PathLike[str]], threshold: float, scene: str
) -> dict[str, str]:
    """The fields of :data:`FIELDS` for maps made by ``checkpoints`` at ``threshold``;
    several checkpoints are listed in order, separated by commas."""
    return {
        "glaciermap_version": __version__,
        "checkpoints": ",".join(str(path) for path in checkpoints),
        "checkpoints_sha256": ",".join(file_sha256(path) for path in checkpoints),
        "threshold": f"{threshold:g}",
        "scene": scene,
    }


def read_provenance(raster: str | Path) -> dict[str, str]:
    """The provenance tags of a map GeoTIFF ({} for a raster without them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(raster) as dataset:
                tags = dataset.tags()
    except RasterioError:
        return {}
    return {key: tags[key] for key in FIELDS if key in tags}
