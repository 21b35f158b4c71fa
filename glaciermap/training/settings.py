"""The settings of one training run, resolved once from the validated config.

:meth:`RunSettings.from_config` is called by the workflow's DAG code
(``rules/common.smk``) to fill the ``train`` rule's ``params``;
:meth:`RunSettings.to_params` / :meth:`RunSettings.from_params` carry them to
the job unchanged, so what Snakemake tracks is exactly what the run uses.
Torch-free for that reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from glaciermap.bands import BANDS
from glaciermap.data.normalization import NORMALIZATIONS, Normalization
from glaciermap.errors import ConfigError
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import NO_AUG, AugMode, HParams, ModelName, RunKey, split_dates
from glaciermap.schema import default_field, schema_defaults
from glaciermap.utils.params import canonical

Loss = Literal["bce", "dice", "bce+dice", "focal"]
LOSSES: tuple[Loss, ...] = get_args(Loss)
Optimizer = Literal["adam", "adamw"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
Schedule = Literal["constant", "warmup_cosine"]
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = get_args(Device)
# Settings that do not change the numbers a run produces: a run resumed from
# last.pt may differ in them (another node, another thread count).
NON_NUMERIC = ("device", "threads", "image_every", "checkpoint_every", "min_val_pixels")
# The schema's defaults (glaciermap.schema) are the fields' defaults.
_TRAINING = schema_defaults("training")
_AUGMENTATION = schema_defaults("augmentation")
DEFAULT_JITTER = schema_defaults("augmentation", "jitter")
DEFAULT_GEOMETRIC_JITTER = schema_defaults("augmentation", "geometric")
# The probability at or above which a pixel is glacier, unless tuned on
# validation; not a config key (inference.threshold overrides it per map).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class AugmentParams:
    """Probabilities and strengths of each transform (the config's ``augmentation`` block)."""

    hflip: float = default_field(_AUGMENTATION["hflip"])
    vflip: float = default_field(_AUGMENTATION["vflip"])
    rot90: bool = default_field(_AUGMENTATION["rot90"])
    jitter: dict[str, float] = default_field(DEFAULT_JITTER)

    @classmethod
    def from_config(cls, block: Mapping[str, Any], aug: AugMode = "aug-concat") -> AugmentParams:
        """What ``aug`` draws, from the ``augmentation`` block.

        The study's modes (``aug-concat``, ``aug-online``) use ``hflip``, ``vflip``,
        ``rot90`` and ``jitter``; ``aug-geometric`` flips both ways and turns by
        multiples of 90 degrees, with the mild ``geometric`` brightness/contrast.
        """
        if aug == "aug-geometric":
            mild = {**DEFAULT_GEOMETRIC_JITTER, **block.get("geometric", {})}
            jitter = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
            return cls(hflip=0.5, vflip=0.5, rot90=True, jitter={**jitter, **mild})
        return cls(
            hflip=float(block.get("hflip", _AUGMENTATION["hflip"])),
            vflip=float(block.get("vflip", _AUGMENTATION["vflip"])),
            rot90=bool(block.get("rot90", _AUGMENTATION["rot90"])),
            jitter={**DEFAULT_JITTER, **block.get("jitter", {})},
        )


@dataclass(frozen=True)
class RunSettings:
    """One run = (model, hparams, dates, aug, seed) plus the training settings.

    ``augmentation`` is None for ``noaug`` runs (so that augmentation settings
    do not rerun them). ``threshold`` turns the glacier probability into the
    mask scored by F1.
    """

    model: ModelName
    hparams: HParams
    dates: tuple[str, ...]
    aug: AugMode = NO_AUG
    seed: int = 1
    # Fold of a geographic k-fold cross-validation (docs/chips.md); None outside one.
    fold: int | None = None
    encoder: str = default_field(_TRAINING["encoder"])
    encoder_weights: str | None = default_field(_TRAINING["encoder_weights"])
    epochs: int = default_field(_TRAINING["epochs"])
    batch_size: int = default_field(_TRAINING["batch_size"])
    learning_rate: float = default_field(_TRAINING["learning_rate"])
    optimizer: Optimizer = default_field(_TRAINING["optimizer"])
    weight_decay: float = default_field(_TRAINING["weight_decay"])
    lr_schedule: Schedule = default_field(_TRAINING["lr_schedule"])
    warmup_epochs: float = default_field(_TRAINING["warmup_epochs"])
    final_lr_fraction: float = default_field(_TRAINING["final_lr_fraction"])
    grad_clip_norm: float | None = default_field(_TRAINING["grad_clip_norm"])
    normalization: Normalization = default_field(_TRAINING["normalization"])
    loss: Loss = default_field(_TRAINING["loss"])
    aux_weight: float = default_field(_TRAINING["aux_weight"])
    selection_epochs: int = default_field(_TRAINING["selection_epochs"])
    min_val_pixels: int = default_field(_TRAINING["min_val_pixels"])
    ema_decay: float | None = default_field(_TRAINING["ema_decay"])
    image_every: int = default_field(_TRAINING["image_every"])
    checkpoint_every: int = default_field(_TRAINING["checkpoint_every"])
    device: Device = default_field(_TRAINING["device"])
    threads: int = default_field(_TRAINING["threads"])
    augmentation: AugmentParams | None = None
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "dates", tuple(self.dates))
        self.key  # noqa: B018 - validates model, aug, dates and seed
        if self.aug != NO_AUG and self.augmentation is None:
            # what the mode draws with the schema's defaults (aug-geometric has its own)
            object.__setattr__(self, "augmentation", AugmentParams.from_config({}, self.aug))
        options = {
            "loss": LOSSES,
            "optimizer": OPTIMIZERS,
            "lr_schedule": SCHEDULES,
            "normalization": NORMALIZATIONS,
            "device": DEVICES,
        }
        checks = [
            (f"training.{name}", getattr(self, name) in allowed, f"one of {', '.join(allowed)}")
            for name, allowed in options.items()
        ]
        checks += [
            ("training.epochs", self.epochs >= 1, "at least 1"),
            # batch normalisation (and smp's pooled BN in DeepLabV3+/PAN) needs 2 tiles
            ("training.batch_size", self.batch_size >= 2, "at least 2"),
            ("training.learning_rate", self.learning_rate > 0, "positive"),
            ("training.warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, "in [0, epochs]"),
            ("training.final_lr_fraction", 0 <= self.final_lr_fraction <= 1, "in [0, 1]"),
            ("training.grad_clip_norm", (self.grad_clip_norm or 1) > 0, "positive or null"),
            ("training.aux_weight", self.aux_weight >= 0, "not negative"),
            ("training.selection_epochs", self.selection_epochs >= 1, "at least 1"),
            ("training.min_val_pixels", self.min_val_pixels >= 1, "at least 1"),
            ("training.ema_decay", 0 < (self.ema_decay or 0.5) < 1, "in (0, 1) or null"),
            ("training.image_every", self.image_every >= 1, "at least 1"),
            ("training.checkpoint_every", self.checkpoint_every >= 1, "at least 1"),
            ("training.threads", self.threads >= 1, "at least 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"config key '{key}': must be {expected}")

    @property
    def key(self) -> RunKey:
        """The run's identity (its path under ``results/runs``)."""
        try:
            return RunKey(self.model, self.hparams, self.dates, self.aug, self.seed, self.fold)
        except ValueError as exc:
            raise ConfigError(f"run {self.model}/{self.aug}: {exc}") from exc

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.model,
            hparams=self.hparams,
            encoder=self.encoder,
            in_channels=len(BANDS),
            aux_weight=self.aux_weight,
            encoder_weights=self.encoder_weights,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain JSON values (``metrics.json``'s ``run``), keys sorted."""
        data = dataclasses.asdict(self)
        data.update(self.key.fields())
        return canonical(data)

    def to_params(self) -> dict[str, Any]:
        """What the ``train`` rule's ``params`` carry: every setting but ``threads``
        (the job's ``threads:``, which does not change the numbers)."""
        data = self.to_dict()
        del data["threads"]
        return data

    @classmethod
    def from_params(cls, params: Mapping[str, Any], threads: int) -> RunSettings:
        """The settings :meth:`to_params` wrote, with the threads the scheduler granted."""
        data = dict(params)
        key = RunKey(
            data.pop("model"),
            HParams.from_slug(data.pop("hparams")),
            split_dates(data.pop("dates")),
            data.pop("aug"),
            data.pop("seed"),
            data.pop("fold", None),
        )
        augmentation = data.pop("augmentation")
        unknown = sorted(set(data) - set(_TRAINING_KEYS) - {"threshold"})
        if unknown:
            raise ConfigError(f"training params hold unknown settings {unknown}")
        return cls(
            model=key.model,
            hparams=key.hparams,
            dates=key.dates,
            aug=key.aug,
            seed=key.seed,
            fold=key.fold,
            augmentation=None if augmentation is None else AugmentParams(**augmentation),
            threads=threads,
            **data,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], key: RunKey) -> RunSettings:
        """Settings of the run ``key`` from the validated config.

        ``training.models.<model>`` overrides the training settings for that architecture.
        """
        training = dict(config.get("training", {}))
        overrides = dict(training.pop("models", {}).get(key.model, {}))
        for name in overrides:
            if name not in _TRAINING_KEYS:
                raise ConfigError(
                    f"config key 'training.models.{key.model}.{name}': not a training setting "
                    f"({', '.join(_TRAINING_KEYS)})"
                )
        training.update(overrides)
        block = config.get("augmentation", {})
        augmentation = None if key.aug == NO_AUG else AugmentParams.from_config(block, key.aug)
        return cls(
            model=key.model,
            hparams=key.hparams,
            dates=key.dates,
            aug=key.aug,
            seed=key.seed,
            fold=key.fold,
            augmentation=augmentation,
            **{name: training[name] for name in _TRAINING_KEYS if name in training},
        )


# The keys of the config's ``training`` block that are run settings (``models``
# holds per-architecture overrides of them).
_TRAINING_KEYS = tuple(
    f.name
    for f in dataclasses.fields(RunSettings)
    if f.name
    not in ("model", "hparams", "dates", "aug", "seed", "fold", "augmentation", "threshold")
)
