"""Sentinel-2 L2A product rules: band names, processing baseline, reflectance offset.

From processing baseline 04.00 (January 2022) on, L2A digital numbers carry a
BOA_ADD_OFFSET of -1000: reflectance = (DN - 1000) / 10000. Older products have
no offset. DN 0 marks nodata in every baseline. Both the per-band-file reader
(:mod:`glaciermap.io.scenes`) and the STAC download (:mod:`glaciermap.acquire.stac`)
use these rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from glaciermap.bands import Band

QUANTIFICATION_VALUE = 10000.0
BOA_ADD_OFFSET = -1000.0
NODATA_DN = 0
OFFSET_FROM_BASELINE = (4, 0)
# The 10 m bands of each workflow band (file names *_B02_10m.jp2, STAC eo:bands names).
BAND_IDS: dict[Band, str] = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
# ``_N0509_`` in a SAFE or product name: processing baseline 05.09.
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?=[_.]|$)")


def baseline_from_name(name: str | Path) -> str | None:
    """The processing baseline ("05.09") in a SAFE-style path or product id, if any."""
    for part in reversed(Path(name).parts):
        match = _BASELINE_IN_NAME.search(part)
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def reflectance_offset(baseline: str) -> float:
    """The offset added to DNs before dividing by 10000, for a baseline "NN.NN"."""
    major, minor = (int(p) for p in baseline.split("."))
    return BOA_ADD_OFFSET if (major, minor) >= OFFSET_FROM_BASELINE else 0.0


def to_reflectance(dn: np.ndarray, offset: float) -> np.ndarray:
    """L2A DNs -> float32 reflectance (DN + offset) / 10000; DN 0 (no data) -> NaN."""
    value = (dn.astype(np.float64) + offset) / QUANTIFICATION_VALUE
    return np.where(dn == NODATA_DN, np.nan, value).astype(np.float32)
