"""The ``inference:`` config section: window, margin, blending, batching, TTA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from glaciermap.errors import ConfigError
from glaciermap.utils.params import canonical

BlendKind = Literal["gaussian", "linear", "uniform"]
TtaKind = Literal["none", "flips", "d4"]
BLEND_KINDS: tuple[str, ...] = get_args(BlendKind)
TTA_KINDS: tuple[str, ...] = get_args(TtaKind)
# every model accepts H and W that are multiples of this (five stride-2 stages)
SIZE_MULTIPLE = 32


@dataclass(frozen=True)
class InferenceSettings:
    """How a scene is cut into windows and put back together (threshold is the caller's).

    ``window``: side of the square windows the model predicts (px, a multiple
    of 32, independent of the training tile size); ``margin``: pixels by which
    neighbouring windows overlap, over which ``blend`` cross-fades them;
    ``batch_size``: windows per forward pass; ``block_size``: about how many
    output pixels a side are held in memory at once; ``tta``: test-time
    augmentation (``flips``: 4 flips, ``d4``: the 8 rotations and flips).
    """

    window: int = 1024
    margin: int = 64
    blend: BlendKind = "gaussian"
    batch_size: int = 2
    block_size: int = 1024
    tta: TtaKind = "none"

    def __post_init__(self) -> None:
        if self.window < SIZE_MULTIPLE or self.window % SIZE_MULTIPLE:
            raise ConfigError(
                f"config key 'inference.window': {self.window} is not a positive multiple of "
                f"{SIZE_MULTIPLE}"
            )
        if not 0 <= self.margin < self.window:
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
        if self.batch_size < 1:
            raise ConfigError("config key 'inference.batch_size': must be at least 1")
        if self.block_size < 1:
            raise ConfigError("config key 'inference.block_size': must be at least 1")

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
