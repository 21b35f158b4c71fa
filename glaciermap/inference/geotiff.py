"""Write rasters block by block and publish them as Cloud-Optimized GeoTIFFs.

GDAL's COG driver cannot be written by windows, so blocks go to a tiled,
compressed GeoTIFF next to the output first, which is then translated to a COG
(internal tiles and overviews) under :func:`atomic_path`: the output appears
complete or not at all.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid
from glaciermap.io.map_layers import MapLayer
from glaciermap.utils.atomic import atomic_path

COG_BLOCK = 512


@contextlib.contextmanager
def cog_writer(
    path: str | Path,
    *,
    height: int,
    width: int,
    dtype: str,
    nodata: float | int | None,
    crs: CRS | None,
    transform: Affine,
    overview_resampling: str = "nearest",
    descriptions: tuple[str, ...] = (),
    layer: MapLayer | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[rasterio.io.DatasetWriter]:
    """Yield a one-band dataset to write by windows; on exit publish ``path`` as a COG.

    ``layer`` adds its units, colour table and class names (:mod:`glaciermap.io.map_layers`);
    ``tags`` (dataset metadata, e.g. :mod:`glaciermap.inference.provenance`) go into the COG.
    """
    profile: dict[str, Any] = geotiff_profile(
        Grid(crs, transform, width, height), dtype, 1, nodata, tiled=True
    )
    # The staging file is read once: a fast codec (zstd level 1 writes ~8x faster
    # than deflate) keeps the writer thread light; the COG gets deflate.
    profile.update(compress="zstd", zstd_level=1)
    profile.pop("predictor")
    with atomic_path(path) as final:
        staging = final.with_name(final.stem + ".staging.tif")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(staging, "w", **profile) as dataset:
                    for i, text in enumerate(descriptions, start=1):
                        dataset.set_band_description(i, text)
                    if layer is not None:
                        _style_band(dataset, layer)
                    if tags:
                        dataset.update_tags(**tags)
                    yield dataset
                rasterio.shutil.copy(
                    staging,
                    final,
                    driver="COG",
                    COMPRESS="DEFLATE",
                    PREDICTOR="YES",
                    BLOCKSIZE=COG_BLOCK,
                    OVERVIEW_RESAMPLING=overview_resampling.upper(),
                    BIGTIFF="IF_SAFER",
                    # the model is done by now: compress with every core
                    NUM_THREADS="ALL_CPUS",
                )
        finally:
            staging.unlink(missing_ok=True)


def _style_band(dataset: rasterio.io.DatasetWriter, layer: MapLayer) -> None:
    """Units, colour table and class names of band 1 (the COG copy keeps them)."""
    if layer.units:
        dataset.set_band_unit(1, layer.units)
    if layer.colours:
        dataset.write_colormap(1, dict(layer.colours))
    tags: Mapping[str, str] = layer.tags()
    if tags:
        dataset.update_tags(1, **tags)
