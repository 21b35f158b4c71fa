"""Sentinel-2 L2A specifics: the processing baseline and its reflectance offset.

From processing baseline 04.00 (January 2022) on, L2A digital numbers carry a
BOA_ADD_OFFSET of -1000: reflectance = (DN - 1000) / 10000. Older products have
no offset. DN 0 marks nodata in every baseline.
"""

from __future__ import annotations

import re
from pathlib import Path

QUANTIFICATION_VALUE = 10000.0
BOA_ADD_OFFSET = -1000.0
NODATA_DN = 0
_SAFE_BASELINE = re.compile(r"_N(\d{2})(\d{2})(?=[_.]|$)")


def baseline_from_name(path: str | Path) -> str | None:
    """The processing baseline ("05.09") in a SAFE-style path (``..._N0509_...``), if any."""
    for part in reversed(Path(path).parts):
        match = _SAFE_BASELINE.search(part)
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def reflectance_offset(baseline: str) -> float:
    """The offset added to DNs before dividing by 10000, for a baseline "NN.NN"."""
    major, minor = (int(p) for p in baseline.split("."))
    return BOA_ADD_OFFSET if (major, minor) >= (4, 0) else 0.0
