"""Sentinel-2 L2A product rules: band names, processing baseline, reflectance
offset and the Scene Classification (SCL) layer.

From processing baseline 04.00 (January 2022) on, L2A digital numbers carry a
BOA_ADD_OFFSET of -1000: reflectance = (DN - 1000) / 10000. Older products have
no offset. DN 0 marks nodata in every baseline. Both the per-band-file reader
(:mod:`glaciermap.io.scenes`) and the STAC download (:mod:`glaciermap.acquire.stac`)
use these rules.

The SCL band (``*_SCL_20m.jp2``, STAC asset ``scl``) gives every 20 m pixel one
of the classes 0-11 of ``SCL_CLASSES``; the classes of ``INVALID_SCL_CLASSES``
(no data, saturated or defective, cloud shadow, cloud of medium and high
probability, thin cirrus) are what the workflow masks by default. Snow and ice
(11) is what glaciers look like, so it is valid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from glaciermap.channels import Spectral

QUANTIFICATION_VALUE = 10000.0
BOA_ADD_OFFSET = -1000.0
NODATA_DN = 0
OFFSET_FROM_BASELINE = (4, 0)
# The band id of each spectral channel (file names *_B02_10m.jp2, *_B11_20m.jp2,
# STAC eo:bands names): 10 m blue, green, red, nir; the others 20 m, which the
# workflow resamples bilinearly onto the 10 m grid (reflectance varies smoothly
# enough at 20 m that bilinear beats the blocks of nearest neighbour).
BAND_IDS: dict[Spectral, str] = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
}
BANDS_10M: tuple[Spectral, ...] = ("blue", "green", "red", "nir")
# ``_N0509_`` in a SAFE or product name: processing baseline 05.09.
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?=[_.]|$)")
# ``_B8A_20m.jp2`` or ``_B02.tif`` in a band file name: the band's id.
_BAND_IN_NAME = re.compile(r"_(B\d{2}|B8A|SCL)(?=[_.]|$)")

SCL_BAND_ID = "SCL"
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "topographic casted shadows",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow or ice",
}
INVALID_SCL_CLASSES: tuple[int, ...] = (0, 1, 3, 8, 9, 10)


def baseline_from_name(name: str | Path) -> str | None:
    """The processing baseline ("05.09") in a SAFE-style path or product id, if any."""
    for part in reversed(Path(name).parts):
        match = _BASELINE_IN_NAME.search(part)
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def band_id_from_name(name: str | Path) -> str | None:
    """The Sentinel-2 band id ("B02", "B8A", "SCL") in a band file's name, if any."""
    match = _BAND_IN_NAME.search(Path(name).name)
    return match[1] if match else None


def safe_name(path: str | Path) -> str | None:
    """The ``*.SAFE`` product folder a band file lies in, if any."""
    for part in reversed(Path(path).parts):
        if part.endswith(".SAFE"):
            return part
    return None


def reflectance_offset(baseline: str) -> float:
    """The offset added to DNs before dividing by 10000, for a baseline "NN.NN"."""
    major, minor = (int(p) for p in baseline.split("."))
    return BOA_ADD_OFFSET if (major, minor) >= OFFSET_FROM_BASELINE else 0.0


def to_reflectance(dn: np.ndarray, offset: float) -> np.ndarray:
    """L2A DNs -> float32 reflectance (DN + offset) / 10000; DN 0 (no data) -> NaN."""
    value = (dn.astype(np.float64) + offset) / QUANTIFICATION_VALUE
    return np.where(dn == NODATA_DN, np.nan, value).astype(np.float32)
