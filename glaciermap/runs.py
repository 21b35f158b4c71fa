"""Run identity: which model, hyperparameters, dates, augmentation and seed a run is.

A training run is named everywhere by one path,
``{model}/{hparams}/{dates}/{aug}/seed{seed}`` (:data:`RUN_PATTERN`; a run of
fold ``k`` of a geographic k-fold cross-validation, docs/chips.md, ends in
``seed{seed}-fold{k}``: folds are repetitions like seeds), and the
threshold baseline and the seed ensembles by ``baseline/{dates}`` and
``ensemble/{model}/{hparams}/{dates}/{aug}``. This module is the only place
that builds or parses these names. It imports neither torch nor GDAL: the
workflow's DAG code (``rules/common.smk``) imports it, and dry runs stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

ModelName = Literal[
    "maresunet",
    "unetplusplus",
    "manet",
    "wavemix",
    "linknet",
    "fpn",
    "pspnet",
    "pan",
    "deeplabv3plus",
]
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)
DISPLAY_NAMES: dict[str, str] = {
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

Activation = Literal["sigmoid", "softmax"]
Pooling = Literal["max", "mean"]
ACTIVATIONS: tuple[Activation, ...] = get_args(Activation)
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)

# noaug; aug-concat: the study's augmented copies appended to the originals;
# aug-online: the same transforms drawn per batch; aug-geometric: flips and
# 90-degree rotations (optionally mild brightness/contrast) drawn per batch.
AugMode = Literal["noaug", "aug-concat", "aug-online", "aug-geometric"]
AUG_MODES: tuple[AugMode, ...] = get_args(AugMode)
NO_AUG: AugMode = "noaug"

DATE_PATTERN = r"[A-Za-z0-9_-]+"
DATES_SEPARATOR = "+"
FOLD_SEPARATOR = "-fold"  # seed1-fold2: seed 1 of the run of fold 2
RUN_PATTERN = "{model}/{hparams}/{dates}/{aug}/seed{seed}"
# A seed ensemble: the run without its seed, under ensemble/.
ENSEMBLE_PATTERN = "ensemble/{model}/{hparams}/{dates}/{aug}"
BASELINE = "baseline"
ENSEMBLE = "ensemble"


def _choice(values: Sequence[str]) -> str:
    return "|".join(re.escape(v) for v in values)


@dataclass(frozen=True)
class HParams:
    """One cell of the study's hyperparameter grid."""

    dropout: float
    activation: Activation
    pooling: Pooling

    PATTERN = (
        rf"dropout(?P<dropout>[0-9]*\.?[0-9]+)-(?P<activation>{_choice(ACTIVATIONS)})"
        rf"-(?P<pooling>{_choice(POOLINGS)})"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropout", float(self.dropout))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be sigmoid or softmax, not {self.activation!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be max or mean, not {self.pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def slug(self) -> str:
        """The ``{hparams}`` wildcard, e.g. ``dropout0.4-softmax-mean``."""
        return f"dropout{self.dropout:g}-{self.activation}-{self.pooling}"

    @classmethod
    def from_slug(cls, slug: str) -> HParams:
        """The cell of an ``{hparams}`` wildcard."""
        match = re.fullmatch(cls.PATTERN, slug)
        if not match:
            raise ValueError(f"not a hyperparameter slug: {slug!r}")
        return cls(
            float(match["dropout"]),
            cast(Activation, match["activation"]),
            cast(Pooling, match["pooling"]),
        )

    @classmethod
    def from_mapping(cls, block: dict[str, Any]) -> HParams:
        """A config block ``{dropout, activation, pooling}``."""
        return cls(float(block["dropout"]), block["activation"], block["pooling"])

    @property
    def out_channels(self) -> int:
        """Model output channels: 1 (sigmoid) or 2 (softmax over not glacier, glacier)."""
        return 1 if self.activation == "sigmoid" else 2


def join_dates(dates: Sequence[str]) -> str:
    """The ``{dates}`` wildcard of a run trained on ``dates``: ``july+august``."""
    return DATES_SEPARATOR.join(dates)


def split_dates(dates: str) -> tuple[str, ...]:
    """The date labels of a ``{dates}`` wildcard."""
    return tuple(dates.split(DATES_SEPARATOR))


@dataclass(frozen=True)
class RunKey:
    """The identity of one training run; :attr:`path` is its name in every path and table."""

    model: ModelName
    hparams: HParams
    dates: tuple[str, ...]
    aug: AugMode
    seed: int
    fold: int | None = None

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        if self.aug not in AUG_MODES:
            raise ValueError(f"unknown augmentation {self.aug!r}; one of {', '.join(AUG_MODES)}")
        object.__setattr__(self, "dates", tuple(self.dates))
        object.__setattr__(self, "seed", int(self.seed))
        if self.fold is not None:
            object.__setattr__(self, "fold", int(self.fold))
            if self.fold < 0:
                raise ValueError(f"bad fold {self.fold}")
        if not self.dates or not all(re.fullmatch(DATE_PATTERN, d) for d in self.dates):
            raise ValueError(f"bad date labels {self.dates!r}")

    @property
    def dates_label(self) -> str:
        return join_dates(self.dates)

    @property
    def path(self) -> str:
        """``{model}/{hparams}/{dates}/{aug}/seed{seed}`` (``...-fold{k}`` for a fold)."""
        return RUN_PATTERN.format(
            model=self.model,
            hparams=self.hparams.slug,
            dates=self.dates_label,
            aug=self.aug,
            seed=self.seed_label,
        )

    @property
    def seed_label(self) -> str:
        """The ``{seed}`` wildcard: the seed, and ``-fold{k}`` for a fold's run."""
        return str(self.seed) if self.fold is None else f"{self.seed}{FOLD_SEPARATOR}{self.fold}"

    @property
    def configuration(self) -> str:
        """The run without its seed and fold, ``{model}/{hparams}/{dates}/{aug}``: what
        ensembles and tables pool."""
        return self.path.rsplit("/", 1)[0]

    @property
    def ensemble_label(self) -> str:
        """``ensemble/{model}/{hparams}/{dates}/{aug}``: the seed ensemble this run belongs to."""
        fields = self.fields()
        del fields["seed"], fields["fold"]
        return ENSEMBLE_PATTERN.format(**fields)

    @classmethod
    def parse(cls, text: str) -> RunKey:
        """The key of a run path; :class:`ValueError` for anything else."""
        match = _RUN_REGEX.fullmatch(text.strip("/"))
        if not match:
            raise ValueError(f"not a run path {RUN_PATTERN}: {text!r}")
        return cls(
            model=cast(ModelName, match["model"]),
            hparams=HParams.from_slug(match["hparams"]),
            dates=split_dates(match["dates"]),
            aug=cast(AugMode, match["aug"]),
            seed=int(match["seed"]),
            fold=None if match["fold"] is None else int(match["fold"]),
        )

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> RunKey:
        """The key of a Snakemake job whose wildcards are those of :data:`RUN_PATTERN`."""
        return cls.parse(
            RUN_PATTERN.format(
                model=wildcards.model,
                hparams=wildcards.hparams,
                dates=wildcards.dates,
                aug=wildcards.aug,
                seed=wildcards.seed,
            )
        )

    def fields(self) -> dict[str, Any]:
        """Flat fields (``model``, ``hparams`` slug, ``dates`` label, ``aug``, ``seed``,
        ``fold``: None outside cross-validation)."""
        return {
            "model": self.model,
            "hparams": self.hparams.slug,
            "dates": self.dates_label,
            "aug": self.aug,
            "seed": self.seed,
            "fold": self.fold,
        }


# Wildcard constraints of the workflow: the patterns the names above are made of.
WILDCARD_PATTERNS = {
    "model": _choice(MODEL_NAMES),
    "hparams": re.sub(r"\(\?P<\w+>", "(", HParams.PATTERN),
    "date": DATE_PATTERN,
    "dates": rf"{DATE_PATTERN}(\{DATES_SEPARATOR}{DATE_PATTERN})*",
    "aug": _choice(AUG_MODES),
    "seed": r"[0-9]+(-fold[0-9]+)?",
}
_RUN_REGEX = re.compile(
    RUN_PATTERN.replace("{seed}", "(?P<seed>[0-9]+)(?:-fold(?P<fold>[0-9]+))?").format(
        **{name: f"(?P<{name}>{WILDCARD_PATTERNS[name]})" for name in ("model", "dates", "aug")},
        hparams=f"(?P<hparams>{WILDCARD_PATTERNS['hparams']})",
    )
)


def baseline_label(dates: str) -> str:
    """``baseline/{dates}``: the threshold baseline fitted on the training tiles of ``dates``."""
    return f"{BASELINE}/{dates}"


@dataclass(frozen=True)
class Label:
    """What an evaluation or area row belongs to: a run, the baseline or an ensemble."""

    kind: Literal["run", "baseline", "ensemble"]
    model: str
    hparams: str
    dates: str
    aug: str
    seed: int | None
    fold: int | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hparams": self.hparams,
            "dates": self.dates,
            "aug": self.aug,
            "seed": self.seed,
        }


def parse_label(text: str) -> Label:
    """A run path, ``baseline/{dates}`` or ``ensemble/{model}/{hparams}/{dates}/{aug}``."""
    parts = text.strip("/").split("/")
    if parts[0] == BASELINE and len(parts) == 2:
        return Label("baseline", BASELINE, "", parts[1], "", None)
    if parts[0] == ENSEMBLE and len(parts) == 5:
        key = RunKey.parse("/".join([*parts[1:], "seed0"]))
        fields = key.fields()
        return Label("ensemble", key.model, fields["hparams"], fields["dates"], key.aug, None)
    key = RunKey.parse(text)
    fields = key.fields()
    return Label("run", key.model, fields["hparams"], fields["dates"], key.aug, key.seed, key.fold)
