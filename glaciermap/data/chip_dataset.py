"""A chip dataset's settings (config ``data.chips.<label>``) and its files.

Torch-, pandas- and GDAL-free: the workflow's DAG code builds the datasets and
lists their files as rule inputs. Reading and cutting chips is
:mod:`glaciermap.data.chips`. Defaults are the schema's (:mod:`glaciermap.schema`).
"""

from __future__ import annotations

import datetime as dt
import glob
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

from glaciermap.channels import DEFAULT_CHANNELS, needs_dem, spectral_bands
from glaciermap.data.tile_size import check_override
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.schema import default_field, schema_defaults

ChipRole = Literal["train", "test", "train_val", "kfold"]
CHIP_ROLES: tuple[ChipRole, ...] = get_args(ChipRole)
OnBadChip = Literal["skip", "error"]
ON_BAD_CHIP: tuple[OnBadChip, ...] = get_args(OnBadChip)
Product = Literal["generic", "sentinel2_l2a"]
PRODUCTS: tuple[Product, ...] = get_args(Product)
# Placeholders of the mask path pattern, from the image path.
MASK_FIELDS = ("stem", "name", "parent")
_CHIPS = schema_defaults("$defs", "chip_dataset")
_VALIDATION = schema_defaults("$defs", "chip_dataset", "validation")


class BadChip(InputDataError):
    """One chip cannot be used; ``reason`` says why (the message also names the file)."""

    def __init__(self, image: Path, reason: str) -> None:
        super().__init__(f"chip {image}: {reason}")
        self.image = image
        self.reason = reason


@dataclass(frozen=True)
class ChipDataset:
    """The settings of one chip dataset (config ``data.chips.<label>`` or the
    ``evaluate-chips`` options); defaults are the schema's."""

    label: str
    images: str
    split: ChipRole
    masks: str | None = None
    outlines: Mapping[str, Any] | None = None
    bands: Mapping[str, int] = default_field(_CHIPS["bands"])
    product: Product = default_field(_CHIPS["product"])
    processing_baseline: str | None = None
    scale: float = default_field(_CHIPS["scale"])
    offset: float = default_field(_CHIPS["offset"])
    nodata: float | None = default_field(_CHIPS["nodata"])
    glacier: tuple[int, ...] = default_field(tuple(_CHIPS["glacier"]))
    not_glacier: tuple[int, ...] = default_field(tuple(_CHIPS["not_glacier"]))
    ignore: tuple[int, ...] = default_field(tuple(_CHIPS["ignore"]))
    acquired: str | Mapping[str, str] | None = default_field(_CHIPS["acquired"])
    val_fraction: float = default_field(_VALIDATION["fraction"])
    val_block_m: float = default_field(float(_VALIDATION["block_m"]))
    split_seed: int = default_field(_VALIDATION["seed"])
    folds: int = default_field(_CHIPS["folds"])
    on_bad_chip: OnBadChip = default_field(_CHIPS["on_bad_chip"])
    # This dataset's tiles instead of data.tiles (glaciermap.data.tile_size).
    tiles: Mapping[str, Any] | None = None
    # Where the settings come from, for messages: "config" (keys data.chips.<label>.*)
    # or "cli" (options --images, --masks, ...).
    origin: Literal["config", "cli"] = "config"
    # Not part of the chip block: the channels every chip gives (data.channels, or a
    # checkpoint's) and the DEM (data.dem) their terrain channels come from.
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    dem: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "glacier", tuple(int(v) for v in self.glacier))
        object.__setattr__(self, "not_glacier", tuple(int(v) for v in self.not_glacier))
        object.__setattr__(self, "ignore", tuple(int(v) for v in self.ignore))
        object.__setattr__(self, "channels", tuple(self.channels))
        missing = [name for name in spectral_bands(self.channels) if name not in self.bands]
        if missing:
            raise ConfigError(
                f"{self.key('bands')}: no {', '.join(missing)} band, which the channels "
                f"{', '.join(self.channels)} need"
            )
        if needs_dem(self.channels) and not self.dem:
            raise ConfigError(
                f"{self.key('bands')}: the channels {', '.join(self.channels)} need a DEM "
                "(config key 'data.dem')"
            )
        needed = spectral_bands(self.channels)
        object.__setattr__(self, "bands", {name: int(self.bands[name]) for name in needed})
        if (self.masks is None) == (self.outlines is None):
            raise ConfigError(f"{self.key('masks')}: give either masks or outlines")
        if self.masks is not None:
            names = {name for _, name, _, _ in _FORMATTER.parse(self.masks) if name}
            if not names or not names <= set(MASK_FIELDS):
                raise ConfigError(
                    f"{self.key('masks')}: {self.masks!r} must name the image with "
                    f"{{stem}} (or {{name}}, {{parent}}), e.g. masks/{{stem}}.tif"
                )
        for key, values, other, name in (
            ("ignore", self.ignore, self.glacier, "glacier"),
            ("not_glacier", self.not_glacier, self.glacier, "glacier"),
            ("ignore", self.ignore, self.not_glacier, "not_glacier"),
        ):
            if set(values) & set(other):
                raise ConfigError(
                    f"{self.key(key)}: values {sorted(set(values) & set(other))} "
                    f"are also {name} values"
                )
        for check, key, expected in (
            (self.product in PRODUCTS, "product", f"one of {', '.join(PRODUCTS)}"),
            (self.split in CHIP_ROLES, "split", f"one of {', '.join(CHIP_ROLES)}"),
            (self.on_bad_chip in ON_BAD_CHIP, "on_bad_chip", f"one of {', '.join(ON_BAD_CHIP)}"),
            (0 < self.val_fraction < 1, "validation.fraction", "in (0, 1)"),
            (self.val_block_m > 0, "validation.block_m", "positive"),
            (self.folds >= 2, "folds", "at least 2"),
        ):
            if not check:
                raise ConfigError(f"{self.key(key)}: must be {expected}")
        self.date_rule  # noqa: B018 - checks the acquired setting
        check_override(self.tiles, f"data.chips.{self.label}.tiles")

    @classmethod
    def from_config(
        cls,
        label: str,
        block: Mapping[str, Any],
        channels: Sequence[str] = DEFAULT_CHANNELS,
        dem: Mapping[str, Any] | None = None,
    ) -> ChipDataset:
        """The dataset of config block ``data.chips.<label>`` (validated by the schema)
        giving ``channels`` (``data.channels``; terrain from ``dem``, ``data.dem``)."""
        block = dict(block)
        validation = dict(block.pop("validation", {}) or {})
        ignore = block.pop("ignore", _CHIPS["ignore"])
        return cls(
            label=label,
            ignore=(ignore,) if isinstance(ignore, int) else tuple(ignore),
            val_fraction=validation.get("fraction", _VALIDATION["fraction"]),
            val_block_m=float(validation.get("block_m", _VALIDATION["block_m"])),
            split_seed=validation.get("seed", _VALIDATION["seed"]),
            channels=tuple(channels),
            dem=dem if needs_dem(channels) else None,
            **block,
        )

    def key(self, name: str) -> str:
        """How a message names setting ``name``: the config key or the option."""
        if self.origin == "cli":
            return f"option --{name.split('.')[0].replace('_', '-')}"
        return f"config key 'data.chips.{self.label}.{name}'"

    @cached_property
    def date_rule(self) -> ChipDates:
        return ChipDates.from_setting(self.acquired, self.key("acquired"))

    @property
    def cross_validated(self) -> bool:
        """True for ``split: kfold``: its runs are fold runs, each tested on its fold."""
        return self.split == "kfold"

    @property
    def trains(self) -> bool:
        """True when the dataset gives training tiles (its label can join ``{dates}``)."""
        return self.split != "test"


_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class ChipDates:
    """The acquisition date of each chip: one fixed date, or parsed from the file stem
    by ``pattern`` (a regular expression whose first group, or group ``date``, is
    read with the ``strftime`` ``format``), or unknown."""

    fixed: dt.date | None = None
    pattern: re.Pattern[str] | None = None
    format: str = "%Y-%m-%d"

    @classmethod
    def from_setting(cls, setting: str | Mapping[str, str] | None, key: str) -> ChipDates:
        if setting is None:
            return cls()
        if isinstance(setting, str):
            try:
                return cls(fixed=dt.date.fromisoformat(setting))
            except ValueError as exc:
                raise ConfigError(f"{key}: {setting!r} is not a YYYY-MM-DD date") from exc
        try:
            pattern = re.compile(setting["pattern"])
        except re.error as exc:
            raise ConfigError(f"{key}.pattern: not a regular expression ({exc})") from exc
        if pattern.groups < 1:
            raise ConfigError(f"{key}.pattern: {pattern.pattern!r} needs a (group) for the date")
        return cls(pattern=pattern, format=setting.get("format", "%Y-%m-%d"))

    @property
    def known(self) -> bool:
        return self.fixed is not None or self.pattern is not None

    def of(self, image: Path) -> dt.date | None:
        """The date of the chip ``image``; :class:`BadChip` when its name has none."""
        if self.pattern is None:
            return self.fixed
        match = self.pattern.search(image.stem)
        if match is None:
            raise BadChip(
                image, f"file name does not match acquired.pattern {self.pattern.pattern}"
            )
        text = match["date"] if "date" in self.pattern.groupindex else match[1]
        try:
            return dt.datetime.strptime(text, self.format).date()
        except ValueError:
            raise BadChip(
                image, f"{text!r} in the file name is not a date of format {self.format}"
            ) from None


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class ChipFiles:
    """One chip's image and (unless the dataset uses outlines) its mask file."""

    image: Path
    mask: Path | None


def image_files(dataset: ChipDataset, base_dir: str | Path = ".") -> list[Path]:
    """The dataset's image files (its glob, sorted); ConfigError when there is none."""
    base = Path(base_dir)
    found = sorted(glob.glob(str(base / dataset.images), recursive=True))
    files = [Path(path) for path in found if Path(path).is_file()]
    if not files:
        raise ConfigError(f"{dataset.key('images')}: no file matches {base / dataset.images}")
    return files


def mask_path(dataset: ChipDataset, image: Path, base_dir: str | Path = ".") -> Path | None:
    """The mask file of ``image`` by the dataset's pattern (None with outlines)."""
    if dataset.masks is None:
        return None
    fields = {"stem": image.stem, "name": image.name, "parent": image.parent.name}
    return Path(base_dir) / dataset.masks.format(**fields)


def chip_files(
    dataset: ChipDataset, images: Sequence[str | Path], base_dir: str | Path = "."
) -> list[ChipFiles]:
    """Pair each image with its mask; two images may not share a mask."""
    pairs = [ChipFiles(Path(i), mask_path(dataset, Path(i), base_dir)) for i in images]
    masks = [pair.mask for pair in pairs if pair.mask is not None]
    if len(set(masks)) < len(masks):
        shared = next(m for m in masks if masks.count(m) > 1)
        raise ConfigError(
            f"{dataset.key('masks')}: several images map to the mask {shared}; use {{parent}} "
            "or another placeholder that tells them apart"
        )
    return pairs


def dataset_inputs(dataset: ChipDataset, base_dir: str | Path = ".") -> dict[str, list[str]]:
    """The files a job reading the dataset needs: ``images``, the ``masks`` that exist
    (a missing one makes its chip bad, not the job impossible) and ``outlines``."""
    images = image_files(dataset, base_dir)
    masks = [str(pair.mask) for pair in chip_files(dataset, images, base_dir) if pair.mask]
    outlines = [str(Path(base_dir) / dataset.outlines["file"])] if dataset.outlines else []
    return {
        "images": [str(path) for path in images],
        "masks": [path for path in masks if Path(path).is_file()],
        "outlines": outlines,
    }
