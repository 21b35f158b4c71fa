"""The ``inference:`` config section: window, margin, blending, batching, TTA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from glaciermap.errors import ConfigError
from glaciermap.schema import default_field, schema_defaults
from glaciermap.utils.params import canonical

BlendKind = Literal["gaussian", "linear", "uniform"]
TtaKind = Literal["none", "flips", "d4"]
BLEND_KINDS: tuple[str, ...] = get_args(BlendKind)
TTA_KINDS: tuple[str, ...] = get_args(TtaKind)
# every model accepts H and W that are multiples of this (five stride-2 stages)
SIZE_MULTIPLE = 32
# Window pixels per forward pass when batch_size is null: 256 windows of 64 px,
# 64 of 128 px, one of 1024 px (activations of about 1 GB for DeepLabV3+/resnet34).
BATCH_PIXELS = 1024 * 1024
_INFERENCE = schema_defaults("inference")


@dataclass(frozen=True)
class InferenceSettings:
    """How a scene is cut into windows and put back together (threshold is the caller's).

    ``window``: side of the square windows the model predicts (px, a multiple
    of 32; None = the checkpoint's training tile); ``margin``: pixels by which
    neighbouring windows overlap, over which ``blend`` cross-fades them (None =
    a quarter of the window);
    ``batch_size``: windows per forward pass (None = about a megapixel);
    ``block_size``: about how many output pixels a side are held in memory at
    once; ``tta``: test-time augmentation (``flips``: 4 flips, ``d4``: the 8
    rotations and flips).
    """

    window: int | None = default_field(_INFERENCE["window"])
    margin: int | None = default_field(_INFERENCE["margin"])
    blend: BlendKind = default_field(_INFERENCE["blend"])
    batch_size: int | None = default_field(_INFERENCE["batch_size"])
    block_size: int = default_field(_INFERENCE["block_size"])
    tta: TtaKind = default_field(_INFERENCE["tta"])

    def __post_init__(self) -> None:
        if self.window is not None and (self.window < SIZE_MULTIPLE or self.window % SIZE_MULTIPLE):
            raise ConfigError(
                f"config key 'inference.window': {self.window} is not a positive multiple of "
                f"{SIZE_MULTIPLE}"
            )
        if self.margin is not None and not (
            0 <= self.margin < (self.window if self.window is not None else float("inf"))
        ):
            raise ConfigError(
                f"config key 'inference.margin': {self.margin} not in [0, window = {self.window})"
            )
        if self.blend not in BLEND_KINDS:
            raise ConfigError(
                f"config key 'inference.blend': {self.blend!r} is not one of "
                f"{', '.join(BLEND_KINDS)}"
            )
        if self.tta not in TTA_KINDS:
            raise ConfigError(
                f"config key 'inference.tta': {self.tta!r} is not one of {', '.join(TTA_KINDS)}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("config key 'inference.batch_size': must be at least 1")
        if self.block_size < 1:
            raise ConfigError("config key 'inference.block_size': must be at least 1")

    @property
    def resolved(self) -> bool:
        """True when window and margin are numbers (see :meth:`for_tile`)."""
        return None not in (self.window, self.margin, self.batch_size)

    def window_margin(self) -> tuple[int, int]:
        """Window and margin in pixels; the settings must be resolved (:meth:`for_tile`)."""
        if self.window is None or self.margin is None:
            raise ValueError("inference settings not resolved for a checkpoint's tile")
        return self.window, self.margin

    def for_tile(self, tile_size: int | None) -> InferenceSettings:
        """Window and margin in pixels for a model trained on ``tile_size`` px tiles.

        By default a model predicts windows of its training tile, blended over a
        quarter of it: models with global pooling (DeepLabV3+'s ASPP image pooling,
        PSPNet's pyramid pooling) change their maps on windows larger than the
        tiles they were trained on (README "Maps").
        """
        if self.window is not None:
            window = self.window
        elif tile_size is not None:
            window = int(tile_size)
        else:
            raise ValueError("no window set and no training tile to take it from")
        margin = self.margin if self.margin is not None else window // 4
        batch = self.batch_size or max(1, BATCH_PIXELS // window**2)
        return replace(self, window=window, margin=margin, batch_size=batch)

    @classmethod
    def from_config(cls, inference: Mapping[str, Any]) -> InferenceSettings:
        """The settings in an ``inference:`` mapping (other keys, e.g. threshold, ignored)."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in inference.items() if key in names})


def prediction_params(inference: Mapping[str, Any]) -> dict[str, Any]:
    """What a map prediction uses of the ``inference:`` section (its rule's ``params``):
    the window settings and the threshold; the area and outline settings rerun no map."""
    names = [field.name for field in fields(InferenceSettings)] + ["threshold"]
    return canonical({key: inference[key] for key in names if key in inference})
