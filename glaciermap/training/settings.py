"""The settings of one training run, read from the validated config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from glaciermap.errors import ConfigError
from glaciermap.models.spec import MODEL_NAMES, HParams, ModelSpec
from glaciermap.training.augmentation import AUG_MODES, AugmentParams
from glaciermap.training.losses import LOSSES

DEVICES = ("auto", "cpu", "cuda")
# Keys of the config's ``training`` block that are run settings (``models`` holds overrides).
_TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "loss",
    "encoder",
    "encoder_weights",
    "aux_weight",
    "selection_epochs",
    "image_every",
    "device",
    "threads",
)
# Settings that do not change the numbers a run produces (a resumed run may differ in them).
NON_NUMERIC = ("device", "threads", "image_every")


@dataclass(frozen=True)
class RunSettings:
    """One run = (model, hparams, dates, aug, seed) plus the training settings.

    ``threshold`` turns the glacier probability into the mask scored by F1.
    """

    model: str
    hparams: HParams
    dates: tuple[str, ...]
    aug: str = "noaug"
    seed: int = 1
    encoder: str = "resnet34"
    encoder_weights: str | None = None
    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    loss: str = "bce"
    aux_weight: float = 0.4
    selection_epochs: int = 5
    image_every: int = 5
    device: str = "auto"
    threads: int = 2
    augmentation: AugmentParams = field(default_factory=AugmentParams)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "dates", tuple(self.dates))
        checks = [
            ("model", self.model in MODEL_NAMES, f"one of {', '.join(MODEL_NAMES)}"),
            ("aug", self.aug in AUG_MODES, f"one of {', '.join(AUG_MODES)}"),
            ("training.loss", self.loss in LOSSES, f"one of {', '.join(LOSSES)}"),
            ("training.device", self.device in DEVICES, f"one of {', '.join(DEVICES)}"),
            ("training.epochs", self.epochs >= 1, "at least 1"),
            # batch normalisation (and smp's pooled BN in DeepLabV3+/PAN) needs 2 tiles
            ("training.batch_size", self.batch_size >= 2, "at least 2"),
            ("training.learning_rate", self.learning_rate > 0, "positive"),
            ("training.aux_weight", self.aux_weight >= 0, "not negative"),
            ("training.selection_epochs", self.selection_epochs >= 1, "at least 1"),
            ("training.image_every", self.image_every >= 1, "at least 1"),
            ("training.threads", self.threads >= 1, "at least 1"),
            ("dates", len(self.dates) > 0, "at least one date"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"config key '{key}': must be {expected}")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.model,
            hparams=self.hparams,
            encoder=self.encoder,
            in_channels=4,
            aux_weight=self.aux_weight,
            encoder_weights=self.encoder_weights,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``metrics.json``'s ``run``); hparams as its slug and parts."""
        data = dataclasses.asdict(self)
        data["hparams"] = self.hparams.slug
        data.update(dropout=self.hparams.dropout, activation=self.hparams.activation)
        data["pooling"] = self.hparams.pooling
        data["dates"] = "+".join(self.dates)
        return data

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        model: str,
        hparams: str | HParams,
        dates: str | list[str],
        aug: str,
        seed: int,
    ) -> RunSettings:
        """Settings of the run ``{model}/{hparams}/{dates}/{aug}/seed{seed}`` from the config.

        ``training.models.<model>`` overrides the training settings for that architecture.
        """
        training = dict(config.get("training", {}))
        overrides = dict(training.pop("models", {}).get(model, {}))
        for key in overrides:
            if key not in _TRAINING_KEYS:
                raise ConfigError(
                    f"config key 'training.models.{model}.{key}': not a training setting "
                    f"({', '.join(_TRAINING_KEYS)})"
                )
        training.update(overrides)
        if isinstance(hparams, str):
            try:
                hparams = HParams.from_slug(hparams)
            except ValueError as exc:
                raise ConfigError(f"run hparams: {exc}") from exc
        if isinstance(dates, str):
            dates = dates.split("+")
        return cls(
            model=model,
            hparams=hparams,
            dates=tuple(dates),
            aug=aug,
            seed=int(seed),
            augmentation=AugmentParams.from_config(config.get("augmentation", {})),
            **{key: training[key] for key in _TRAINING_KEYS if key in training},
        )
