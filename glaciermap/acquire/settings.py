"""The validated ``acquire:`` config section as typed values.

The acquire rules write the files that the rest of the workflow reads:
``data.scenes.{date}.file`` for every label in ``acquire.dates`` (the spectral
bands ``data.channels`` needs, in order), ``data.outlines.file`` and, when
``data.dem`` names a STAC collection, ``data.dem.file``. :func:`acquired_files`
lists them so that config checks can accept files that do not exist yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glaciermap.channels import DEFAULT_CHANNELS, needs_dem, spectral_bands
from glaciermap.errors import ConfigError
from glaciermap.schema import schema_defaults
from glaciermap.utils.params import canonical

# Keys absent from a section (scene_params and outline_params carry only those
# their job uses) take the schema's defaults.
_ACQUIRE = schema_defaults("acquire")
_AOI = schema_defaults("acquire", "aoi")
_OUTLINES = schema_defaults("acquire", "outlines")


@dataclass(frozen=True)
class DateWindow:
    """The search window of one date label, both ends included."""

    label: str
    start: dt.date
    end: dt.date

    @property
    def middle(self) -> dt.datetime:
        start = dt.datetime.combine(self.start, dt.time(0), tzinfo=dt.UTC)
        end = dt.datetime.combine(self.end, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(days=1)
        return start + (end - start) / 2

    @property
    def interval(self) -> str:
        """The STAC ``datetime`` parameter covering whole days."""
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59Z"

    def contains(self, when: dt.datetime) -> bool:
        return self.start <= when.astimezone(dt.UTC).date() <= self.end


@dataclass(frozen=True)
class AreaSpec:
    """The area of interest: a lon/lat bbox, or the envelope of some glaciers' outlines."""

    bbox: tuple[float, float, float, float] | None
    glaciers: tuple[str, ...] | None
    buffer_m: float


@dataclass(frozen=True)
class OutlineSource:
    source: str  # "glims_wfs" | "file"
    url: str
    layer: str
    file: str | None


@dataclass(frozen=True)
class AcquireSettings:
    endpoint: str
    collection: str
    area: AreaSpec
    windows: tuple[DateWindow, ...]
    max_cloud: float
    assets: dict[str, str]
    crs: str | None
    resolution: float
    boa_offset: str | float
    timeout_s: float
    retries: int
    outlines: OutlineSource

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> AcquireSettings:
        """Typed view of a validated ``acquire:`` section (defaults filled by the schema),
        whole or as :func:`scene_params` cut it."""
        if not section.get("enabled"):
            raise ConfigError("config key 'acquire.enabled': the acquire section is not enabled")
        section = {**_ACQUIRE, **section}
        aoi = {**_AOI, **section["aoi"]}
        bbox: tuple[float, float, float, float] | None = None
        if "bbox" in aoi:
            west, south, east, north = (float(v) for v in aoi["bbox"])
            bbox = (west, south, east, north)
        if bbox is not None and not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
            raise ConfigError(
                f"config key 'acquire.aoi.bbox': not [west, south, east, north]: {bbox}"
            )
        glaciers = tuple(aoi["glaciers"]) if "glaciers" in aoi else None
        outlines = {**_OUTLINES, **section["outlines"]}
        if outlines["source"] == "file" and not outlines["file"]:
            raise ConfigError("config key 'acquire.outlines.file': required when source is 'file'")
        return cls(
            endpoint=section["endpoint"],
            collection=section["collection"],
            area=AreaSpec(bbox, glaciers, float(aoi["buffer_m"])),
            windows=tuple(parse_window(label, text) for label, text in section["dates"].items()),
            max_cloud=float(section["max_cloud"]),
            assets=dict(section["assets"]),
            crs=section["crs"],
            resolution=float(section["resolution"]),
            boa_offset=section["boa_offset"],
            timeout_s=float(section["timeout_s"]),
            retries=int(section["retries"]),
            outlines=OutlineSource(
                source=outlines["source"],
                url=outlines["url"],
                layer=outlines["layer"],
                file=outlines["file"],
            ),
        )

    def window(self, label: str) -> DateWindow:
        for window in self.windows:
            if window.label == label:
                return window
        raise ConfigError(f"config key 'acquire.dates': no window for date label '{label}'")


def parse_window(label: str, text: str) -> DateWindow:
    """``"2023-07-01..2023-07-31"`` -> DateWindow."""
    key = f"acquire.dates.{label}"
    try:
        first, last = text.split("..")
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    except ValueError as exc:
        raise ConfigError(
            f"config key '{key}': not a window 'YYYY-MM-DD..YYYY-MM-DD': {text}"
        ) from exc
    if end < start:
        raise ConfigError(f"config key '{key}': the window ends before it starts: {text}")
    return DateWindow(label, start, end)


# What the download of one date's scene and that of the outlines read from the
# ``acquire:`` section: their rules' params (changing another key reruns neither).
_SCENE_KEYS = (
    "enabled", "endpoint", "collection", "aoi", "max_cloud", "assets", "crs", "resolution",
    "boa_offset", "timeout_s", "retries",
)  # fmt: skip
_OUTLINE_KEYS = ("enabled", "aoi", "crs", "resolution", "timeout_s", "retries", "outlines")


def scene_params(config: Mapping[str, Any], date: str) -> dict[str, Any]:
    """The ``acquire:`` settings the download of ``date``'s scene uses (its window only)."""
    section = config["acquire"]
    params = {key: section[key] for key in _SCENE_KEYS if key in section}
    return canonical({**params, "dates": {date: section["dates"][date]}})


def outline_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``acquire:`` settings the download of the outlines uses."""
    section = config["acquire"]
    return canonical({key: section[key] for key in _OUTLINE_KEYS if key in section})


def scene_bands(config: Mapping[str, Any]) -> list[str]:
    """The bands a downloaded scene holds, in order: those ``data.channels`` needs."""
    return list(spectral_bands(config["data"].get("channels") or DEFAULT_CHANNELS))


def scene_targets(config: Mapping[str, Any]) -> dict[str, str]:
    """Date label -> the scene file the acquire rule writes (``data.scenes.{label}.file``).

    The downloaded scene holds the bands of :func:`scene_bands` (blue, green,
    red, nir by default) as bands 1, 2, ... in reflectance units, so the scene
    entry must read it that way.
    """
    scenes = config["data"]["scenes"]
    targets = {}
    for label in (config.get("acquire") or {}).get("dates", {}):
        key = f"data.scenes.{label}"
        if label not in scenes or "file" not in scenes[label]:
            raise ConfigError(f"config key '{key}.file': needed for the downloaded scene '{label}'")
        scene = scenes[label]
        expected = {band: i for i, band in enumerate(scene_bands(config), start=1)}
        if dict(scene["bands"]) != expected:
            raise ConfigError(f"config key '{key}.bands': a downloaded scene has bands {expected}")
        if scene.get("product", "generic") != "generic":
            raise ConfigError(
                f"config key '{key}.product': a downloaded scene is already reflectance: "
                "use 'generic' (the L2A offset is applied while downloading)"
            )
        targets[label] = scene["file"]
    return targets


def scl_targets(config: Mapping[str, Any]) -> dict[str, str]:
    """Date label -> the merged SCL file the acquire rule writes for it: the
    ``data.scenes.{label}.validity.scl`` of a downloaded date that has one."""
    targets = {}
    for label in scene_targets(config):
        validity = config["data"]["scenes"][label].get("validity") or {}
        if "scl" not in validity:
            continue
        source = validity["scl"]
        if not isinstance(source, str):
            if source.get("band", 1) != 1:
                raise ConfigError(
                    f"config key 'data.scenes.{label}.validity.scl.band': a downloaded SCL "
                    "is band 1 of its file"
                )
            source = source["file"]
        targets[label] = source
    return targets


def scl_invalid_classes(config: Mapping[str, Any], label: str) -> list[int] | None:
    """The SCL classes date ``label`` masks (``validity.invalid``; None: the defaults),
    so that choosing and merging items counts the same pixels as invalid."""
    validity = config["data"]["scenes"][label].get("validity") or {}
    return validity.get("invalid") if "scl" in validity else None


def dem_target(config: Mapping[str, Any]) -> str | None:
    """The DEM file the acquire rule writes: ``data.dem.file`` when ``data.dem``
    names a STAC collection, acquiring is on and a channel needs the DEM."""
    dem = config["data"].get("dem") or {}
    if not (config.get("acquire") or {}).get("enabled") or "collection" not in dem:
        return None
    if not needs_dem(config["data"].get("channels") or DEFAULT_CHANNELS):
        return None
    return str(dem["file"])


def dem_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the DEM download uses: the area, grid and network settings, and ``data.dem``."""
    section = config["acquire"]
    keys = ("enabled", "endpoint", "aoi", "crs", "resolution", "timeout_s", "retries")
    return canonical(
        {
            "acquire": {key: section[key] for key in keys if key in section},
            "dem": config["data"]["dem"],
        }
    )


def acquired_files(config: Mapping[str, Any]) -> set[str]:
    """Paths that the acquire rules produce (empty when acquiring is disabled)."""
    if not (config.get("acquire") or {}).get("enabled"):
        return set()
    produced = {*scene_targets(config).values(), *scl_targets(config).values()}
    dem = dem_target(config)
    if dem is not None:
        produced.add(dem)
    return {*produced, config["data"]["outlines"]["file"]}
