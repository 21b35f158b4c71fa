"""The four bands of the study (the default ``data.channels``), in this order.

The vocabulary of every channel (more spectral bands, terrain, indices) is
:mod:`glaciermap.channels`; this module names the default four and their
positions, for code that works on them (the demo's tables, band index specs).
Torch- and GDAL-free, so that the config checks and the workflow's DAG code
can import it.
"""

from __future__ import annotations

from typing import Literal, get_args

Band = Literal["blue", "green", "red", "nir"]
BANDS: tuple[Band, ...] = get_args(Band)
# Positions of the bands in (B, H, W) arrays and (N, B, H, W) tensors.
BLUE, GREEN, RED, NIR = (BANDS.index(band) for band in ("blue", "green", "red", "nir"))


def band_index_spec() -> str:
    """``blue=1,green=2,red=3,nir=4``: the bands as 1-based indices of one file, in order."""
    return ",".join(f"{band}={i}" for i, band in enumerate(BANDS, start=1))


def band_indices() -> dict[str, int]:
    """``{"blue": 1, ...}``: the 1-based band number of each band in a workflow scene file."""
    return {band: i for i, band in enumerate(BANDS, start=1)}
