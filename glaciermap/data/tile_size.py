"""Tile size and stride of one scene date or chip dataset: ``data.tiles`` with the
dataset's own ``tiles`` override (docs/chips.md, "Tiles per dataset").

An override gives ``size`` and ``stride`` in pixels, or ``size_m`` and ``stride_m``
in metres, turned into pixels with the dataset's pixel size (a size rounded to
a multiple of 32, at least 32, so that every model's down-sampling fits; a
stride rounded, at least 1). A size without a stride keeps ``data.tiles``'s
ratio of stride to size. Torch- and GDAL-free: the checks run with the config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glaciermap.errors import ConfigError
from glaciermap.schema import schema_defaults

_TILES = schema_defaults("data", "tiles")
SIZE_MULTIPLE = 32  # every model halves a tile 5 times
OVERRIDE_KEYS = ("size", "stride", "size_m", "stride_m")


def check_override(override: Mapping[str, Any] | None, key: str) -> None:
    """An override gives a size and a stride in one unit each, the stride within the size."""
    override = override or {}
    for pixels, metres in (("size", "size_m"), ("stride", "stride_m")):
        if pixels in override and metres in override:
            raise ConfigError(f"config key '{key}': give {pixels} or {metres}, not both")
    if "size" in override and "stride" in override and override["stride"] > override["size"]:
        raise ConfigError(f"config key '{key}.stride': larger than {key}.size")
    if "size_m" in override and "stride_m" in override:
        if override["stride_m"] > override["size_m"]:
            raise ConfigError(f"config key '{key}.stride_m': larger than {key}.size_m")


def needs_pixel_size(override: Mapping[str, Any] | None) -> bool:
    """True when the override is in metres (the dataset's pixel size is needed)."""
    return any(k in (override or {}) for k in ("size_m", "stride_m"))


def resolve_tiles(
    tiles: Mapping[str, Any],
    override: Mapping[str, Any] | None,
    pixel_m: float | None = None,
    key: str = "tiles",
) -> dict[str, Any]:
    """``data.tiles`` (defaults filled) with ``size`` and ``stride`` of the override, in
    pixels; ``pixel_m`` (metres per pixel) is needed for an override in metres."""
    base = {**_TILES, **tiles}
    override = dict(override or {})
    check_override(override, key)
    if not override:
        return base
    if needs_pixel_size(override) and not (pixel_m and pixel_m > 0):
        raise ConfigError(
            f"config key '{key}': a size in metres needs a pixel size in metres, which this "
            "dataset's grid does not give; give size and stride in pixels"
        )
    size = override.get("size")
    if "size_m" in override:
        steps = round(override["size_m"] / pixel_m / SIZE_MULTIPLE)
        size = max(SIZE_MULTIPLE, steps * SIZE_MULTIPLE)
    size = int(size if size is not None else base["size"])
    stride = override.get("stride")
    if "stride_m" in override:
        stride = max(1, round(override["stride_m"] / pixel_m))
    if stride is None:
        stride = max(1, round(base["stride"] * size / base["size"]))
    return {**base, "size": size, "stride": min(int(stride), size)}
