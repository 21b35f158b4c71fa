"""What defines a model: architecture, encoder and the study's hyperparameters.

The study's grid (dropout x activation x pooling, :class:`glaciermap.runs.HParams`)
is given honest semantics:

- ``activation``: ``sigmoid`` = one output channel trained with a binary loss,
  ``softmax`` = two output channels (not glacier, glacier) trained with a
  cross-entropy loss. Both are turned into a glacier probability by
  :func:`glaciermap.models.outputs.glacier_probability`.
- ``dropout`` and ``pooling``: parameters of the auxiliary head, which pools the
  deepest encoder features globally (``max`` or ``mean``), applies dropout and
  predicts the tile's glacier fraction. Its loss, weighted by ``aux_weight``,
  trains the encoder, so both values change the learned weights.

Torch-free, like :mod:`glaciermap.runs`, so that settings can be resolved
without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from glaciermap.bands import BANDS
from glaciermap.runs import MODEL_NAMES, HParams, ModelName
from glaciermap.schema import default_field, schema_defaults

# The training settings the model is built from; their defaults are the schema's.
_TRAINING = schema_defaults("training")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model again, stored in every checkpoint."""

    name: ModelName
    hparams: HParams
    encoder: str = default_field(_TRAINING["encoder"])
    in_channels: int = len(BANDS)
    aux_weight: float = default_field(_TRAINING["aux_weight"])
    encoder_weights: str | None = default_field(_TRAINING["encoder_weights"])  # a local file
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types, as stored in checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """The spec stored by :meth:`to_dict`."""
        data = dict(data)
        data["hparams"] = HParams(**data["hparams"])
        return cls(**data)
