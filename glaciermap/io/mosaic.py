"""Merge the inputs of one date onto the common grid, pixel by pixel.

Each pixel comes from the first input, in rank order, where it is valid: it has
data in all its bands and its validity source (SCL or mask) does not mark it
invalid. Inputs are ranked least cloudy first (the invalid share of the pixels
their validity source classifies; ties keep the config order), so that of two
valid pixels the one of the clearer product wins. A pixel valid in no input is
NaN in the scene and coded :data:`~glaciermap.io.validity.MASKED` (some input
has data there: cloud, shadow, defect) or :data:`~glaciermap.io.validity.NO_DATA`.

Inputs are read one at a time, so memory holds the merged scene plus one input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from glaciermap.io.grid import Grid
from glaciermap.io.validity import MASKED, NO_DATA, VALID, InvalidPixels


@dataclass(frozen=True)
class InputReport:
    """What one input gave the merged scene."""

    input: str  # its config key
    items: tuple[str, ...]  # the products or STAC items it holds
    cloudy_fraction: float
    data_fraction: float  # of the grid: pixels with data in all its bands
    valid_fraction: float  # of the grid: pixels with data that are valid
    used_fraction: float  # of the grid: pixels the merged scene takes from it


@dataclass(frozen=True)
class SceneLayers:
    """A date on the common grid: the bands (NaN unless valid) and the validity codes."""

    bands: np.ndarray  # float32 (B, H, W)
    codes: np.ndarray  # uint8 (H, W): NO_DATA, VALID, MASKED
    grid: Grid
    inputs: tuple[InputReport, ...]  # in rank order

    @property
    def valid_fraction(self) -> float:
        return float((self.codes == VALID).mean())

    def tags(self) -> dict[str, str]:
        """GeoTIFF tags of the scene: every source item, and each input's share."""
        items = [item for report in self.inputs for item in report.items]
        return {
            "source_items": ",".join(dict.fromkeys(items)),
            "valid_fraction": f"{self.valid_fraction:.6f}",
            "inputs": json.dumps([asdict(report) for report in self.inputs]),
        }


def rank_inputs(cloudy_fractions: Sequence[float]) -> list[int]:
    """Indices of the inputs, least cloudy first; ties keep their order."""
    return sorted(range(len(cloudy_fractions)), key=lambda i: cloudy_fractions[i])


def merge_inputs(
    grid: Grid,
    invalid: Sequence[InvalidPixels | None],
    read_bands: Callable[[int], np.ndarray],
    describe: Callable[[int], tuple[str, tuple[str, ...]]],
) -> SceneLayers:
    """Merge ``len(invalid)`` inputs onto ``grid``.

    ``invalid[i]`` is input i's validity source on the grid (None: every pixel
    with data is valid); ``read_bands(i)`` returns its (B, H, W) float32 bands
    on the grid (NaN = no data); ``describe(i)`` its config key and items.
    """
    cloudy = [0.0 if source is None else source.cloudy_fraction for source in invalid]
    bands: np.ndarray | None = None
    codes = np.full(grid.shape, NO_DATA, dtype=np.uint8)
    reports = []
    for index in rank_inputs(cloudy):
        values = read_bands(index)
        if bands is None:
            bands = np.full((values.shape[0], *grid.shape), np.nan, dtype=np.float32)
        has_data = np.isfinite(values).all(axis=0)
        key, items = describe(index)
        source = invalid[index]
        if source is not None:
            source.require_covers(has_data, f"the data of '{key}'")
            valid = has_data & ~source.invalid
        else:
            valid = has_data
        take = valid & (codes != VALID)
        bands[:, take] = values[:, take]
        codes[take] = VALID
        codes[has_data & (codes == NO_DATA)] = MASKED
        reports.append(
            InputReport(
                key,
                items,
                cloudy[index],
                float(has_data.mean()),
                float(valid.mean()),
                float(take.mean()),
            )
        )
    if bands is None:
        raise ValueError("merge_inputs needs at least one input")
    return SceneLayers(bands, codes, grid, tuple(reports))
