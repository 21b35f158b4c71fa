"""What defines a model: architecture, encoder and the study's hyperparameters.

The study's grid (dropout x activation x pooling) is given honest semantics:

- ``activation``: ``sigmoid`` = one output channel trained with a binary loss,
  ``softmax`` = two output channels (not glacier, glacier) trained with a
  cross-entropy loss. Both are turned into a glacier probability by
  :func:`glacier_probability`.
- ``dropout`` and ``pooling``: parameters of the auxiliary head, which pools the
  deepest encoder features globally (``max`` or ``mean``), applies dropout and
  predicts the tile's glacier fraction. Its loss, weighted by ``aux_weight``,
  trains the encoder, so both values change the learned weights.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

MODEL_NAMES = (
    "maresunet",
    "unetplusplus",
    "manet",
    "wavemix",
    "linknet",
    "fpn",
    "pspnet",
    "pan",
    "deeplabv3plus",
)

DISPLAY_NAMES = {
    "maresunet": "MAResUNet",
    "unetplusplus": "UNet++",
    "manet": "MAnet",
    "wavemix": "WaveMix",
    "linknet": "LinkNet",
    "fpn": "FPN",
    "pspnet": "PSPNet",
    "pan": "PAN",
    "deeplabv3plus": "DeepLabV3+",
}

_SLUG = re.compile(
    r"^dropout(?P<dropout>[0-9]*\.?[0-9]+)-(?P<activation>sigmoid|softmax)-(?P<pooling>max|mean)$"
)


@dataclass(frozen=True)
class HParams:
    """One cell of the study's hyperparameter grid."""

    dropout: float
    activation: str  # "sigmoid" | "softmax"
    pooling: str  # "max" | "mean"

    def __post_init__(self) -> None:
        if self.activation not in ("sigmoid", "softmax"):
            raise ValueError(f"activation must be sigmoid or softmax, not {self.activation!r}")
        if self.pooling not in ("max", "mean"):
            raise ValueError(f"pooling must be max or mean, not {self.pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def slug(self) -> str:
        """The ``{hparams}`` wildcard, e.g. ``dropout0.4-softmax-mean``."""
        return f"dropout{self.dropout:g}-{self.activation}-{self.pooling}"

    @classmethod
    def from_slug(cls, slug: str) -> HParams:
        match = _SLUG.match(slug)
        if not match:
            raise ValueError(f"not a hyperparameter slug: {slug!r}")
        return cls(float(match["dropout"]), match["activation"], match["pooling"])

    @property
    def out_channels(self) -> int:
        return 1 if self.activation == "sigmoid" else 2


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model again, stored in every checkpoint."""

    name: str
    hparams: HParams
    encoder: str = "resnet34"
    in_channels: int = 4
    aux_weight: float = 0.4
    encoder_weights: str | None = None  # local file; None = random init
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["hparams"] = HParams(**data["hparams"])
        return cls(**data)


def glacier_probability(mask_logits: torch.Tensor, activation: str) -> torch.Tensor:
    """(N, C, H, W) logits -> (N, H, W) probability of glacier."""
    if activation == "sigmoid":
        return torch.sigmoid(mask_logits[:, 0])
    return torch.softmax(mask_logits, dim=1)[:, 1]
