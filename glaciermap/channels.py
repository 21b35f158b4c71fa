"""The model's input channels: one vocabulary, what each needs and how it is scaled.

``data.channels`` lists the channels of every prepared scene, tile, chip and
checkpoint (default ``blue, green, red, nir``: the study's four bands), in the
order of :data:`CHANNELS` (spectral by wavelength, then terrain, then indices):
one set of channels has one layout, so checkpoints of two configs that name the
same channels agree, and a reordered layout is an error. Three kinds:

- **spectral** bands, named as STAC ``eo:common_name`` spells them (the three
  red-edge bands, which share the common name ``rededge``, as Earth Search's
  asset keys ``rededge1-3``): surface reflectance, read from the scene's
  ``bands`` mapping. Normalised like the study's bands (``training.normalization``:
  the training tiles' mean/std, or each scene's 2-98 percentile stretch).
- **terrain** channels from ``data.dem`` reprojected onto the scene grid:
  ``elevation`` (m) and ``slope`` (degrees). Fixed scaling (:data:`FIXED_RANGES`)
  instead of a per-scene stretch: an elevation means the same on every scene.
- **index** channels computed from spectral bands, ``(a - b) / (a + b)`` of
  :data:`INDEX_BANDS`, clipped to [-1, 1]; fixed scaling [-1, 1].

Torch- and GDAL-free (numpy only), so the config checks and the DAG can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

import numpy as np

# In order of wavelength; every channel list follows the order of CHANNELS.
Spectral = Literal[
    "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22"
]
Terrain = Literal["elevation", "slope"]
Index = Literal["ndsi", "ndwi", "ndvi"]
ChannelKind = Literal["spectral", "terrain", "index"]

SPECTRAL: tuple[Spectral, ...] = get_args(Spectral)
TERRAIN: tuple[Terrain, ...] = get_args(Terrain)
INDICES: tuple[Index, ...] = get_args(Index)
CHANNELS: tuple[str, ...] = (*SPECTRAL, *TERRAIN, *INDICES)
DEFAULT_CHANNELS: tuple[Spectral, ...] = ("blue", "green", "red", "nir")

# index = (a - b) / (a + b): NDSI (snow and ice bright in green, dark in SWIR),
# NDWI (McFeeters: water and ice bright in green, dark in NIR), NDVI (vegetation).
INDEX_BANDS: dict[Index, tuple[Spectral, Spectral]] = {
    "ndsi": ("green", "swir16"),
    "ndwi": ("green", "nir"),
    "ndvi": ("nir", "red"),
}

# Fixed (low, high) mapped to (-1, 1) for the non-spectral channels, in both
# normalisation modes: elevation 0-9000 m (sea level to above Everest), slope
# 0-90 degrees, indices -1..1.
FIXED_RANGES: dict[str, tuple[float, float]] = {
    "elevation": (0.0, 9000.0),
    "slope": (0.0, 90.0),
    **{index: (-1.0, 1.0) for index in INDICES},
}


def channel_kind(channel: str) -> ChannelKind:
    """The kind of ``channel`` (ValueError for a name outside the vocabulary)."""
    if channel in SPECTRAL:
        return "spectral"
    if channel in TERRAIN:
        return "terrain"
    if channel in INDICES:
        return "index"
    raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")


def check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    """``channels`` as a tuple; ValueError on an unknown name, a repeat, another order
    than :data:`CHANNELS`' or no spectral band.

    A scene's grid comes from its bands, so at least one spectral band or index is needed.
    """
    for channel in channels:
        channel_kind(channel)
    repeated = sorted({c for c in channels if list(channels).count(c) > 1})
    if repeated:
        raise ValueError(f"channel(s) listed twice: {', '.join(repeated)}")
    ordered = sorted(channels, key=CHANNELS.index)
    if list(channels) != ordered:
        raise ValueError(
            f"channels {', '.join(channels)} are not in the vocabulary's order "
            f"(spectral by wavelength, terrain, indices): list them as {', '.join(ordered)}"
        )
    if not spectral_bands(channels):
        raise ValueError("at least one spectral band or index is needed (it gives the grid)")
    return tuple(channels)


def spectral_bands(channels: Iterable[str]) -> tuple[Spectral, ...]:
    """The spectral bands a scene must supply for ``channels``: the spectral
    channels in their order, then the bands of the indices not yet listed."""
    needed: list[Spectral] = []
    for channel in channels:
        if channel in SPECTRAL:
            needed.append(channel)
    for channel in channels:
        if channel in INDICES:
            needed.extend(INDEX_BANDS[channel])
    return tuple(dict.fromkeys(needed))


def needs_dem(channels: Iterable[str]) -> bool:
    """True when a channel is derived from the DEM."""
    return any(channel in TERRAIN for channel in channels)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b) as float32 clipped to [-1, 1]; 0 where a + b is 0, NaN stays NaN."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    total = a64 + b64
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(total != 0, (a64 - b64) / total, 0.0)
    value[np.isnan(total)] = np.nan
    return np.clip(value, -1.0, 1.0).astype(np.float32)


def index_values(index: str, bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Index channel ``index`` from the spectral ``bands`` (name -> array)."""
    a, b = INDEX_BANDS[index]  # type: ignore[index]
    return normalized_difference(bands[a], bands[b])


def stack_channels(
    channels: Sequence[str],
    bands: Mapping[str, np.ndarray],
    terrain: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(C, ...) float32 of ``channels`` in order, from spectral ``bands`` and ``terrain``
    layers (name -> array, each shaped like one band)."""
    layers = []
    for channel in channels:
        kind = channel_kind(channel)
        if kind == "spectral":
            layers.append(bands[channel].astype(np.float32, copy=False))
        elif kind == "index":
            layers.append(index_values(channel, bands))
        else:
            if terrain is None:
                raise ValueError(f"channel {channel} needs a DEM (config key 'data.dem')")
            layers.append(terrain[channel].astype(np.float32, copy=False))
    return np.stack(layers)
