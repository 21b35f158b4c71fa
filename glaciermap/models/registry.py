"""Build any of the nine study architectures from a :class:`ModelSpec`.

Every model follows the forward contract of ``docs/architecture.md``:
``forward(x) -> (mask_logits (N, C, H, W), aux_logits (N, 1) or None)`` with
``C = spec.hparams.out_channels``. Weights start random (``encoder_weights=None``
for smp; nothing is downloaded); ``spec.encoder_weights`` may name a local file
loaded by :func:`glaciermap.models.encoder_weights.load_encoder_weights`.

DeepLabV3+ (ASPP image pooling) and PAN (feature pyramid attention) apply batch
normalisation to globally pooled features, so in training mode they need
batches of at least 2 tiles (eval mode takes any batch).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch
from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models.aux_head import smp_aux_params
from glaciermap.models.encoder_weights import load_encoder_weights
from glaciermap.models.maresunet import build_maresunet
from glaciermap.models.spec import ModelSpec
from glaciermap.models.wavemix import build_wavemix

# The seven architectures taken from segmentation-models-pytorch.
SMP_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unetplusplus": smp.UnetPlusPlus,
    "manet": smp.MAnet,
    "linknet": smp.Linknet,
    "fpn": smp.FPN,
    "pspnet": smp.PSPNet,
    "pan": smp.PAN,
    "deeplabv3plus": smp.DeepLabV3Plus,
}


# PAN's feature pyramid attention max-pools the stride-16 features three times,
# so it needs inputs of at least 128 px (8 px at stride 16).
MIN_INPUT_SIZE = {"pan": 128}


def reflect_pad_to(x: torch.Tensor, min_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W of ``x`` symmetrically up to ``min_size``; return the crop offsets."""
    top = left = 0
    # torch's reflect padding must be smaller than the padded dimension: repeat as needed.
    while x.shape[-2] < min_size or x.shape[-1] < min_size:
        pad_h = min(max(0, min_size - x.shape[-2]), x.shape[-2] - 1)
        pad_w = min(max(0, min_size - x.shape[-1]), x.shape[-1] - 1)
        top, left = top + pad_h // 2, left + pad_w // 2
        x = nn.functional.pad(
            x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="reflect"
        )
    return x, (top, left)


# smp arguments that the spec sets; ``spec.extra`` may set the others (e.g. decoder_channels)
_SET_BY_SPEC = (
    "encoder_name",
    "encoder_weights",
    "in_channels",
    "classes",
    "aux_params",
    "activation",
)


class SmpSegmenter(nn.Module):
    """A segmentation-models-pytorch model behind the project's forward contract.

    smp returns ``masks`` alone without ``aux_params`` and ``(masks, labels)``
    with them; this wrapper always returns the pair (``None`` for no head).
    Inputs smaller than ``min_size`` are reflect-padded and the logits cropped
    back, so that every model accepts any multiple of 32 (the aux head then
    also sees the padded border).
    """

    def __init__(self, net: nn.Module, min_size: int = 0) -> None:
        super().__init__()
        self.net = net
        self.min_size = min_size

    @property
    def encoder(self) -> nn.Module:
        """The smp encoder (into which local encoder weights are loaded)."""
        encoder: nn.Module = self.net.get_submodule("encoder")
        return encoder

    @property
    def aux_head(self) -> nn.Module | None:
        """smp's classification head (pool, dropout, linear), as other models' ``aux_head``."""
        head = getattr(self.net, "classification_head", None)
        return head if isinstance(head, nn.Module) else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        height, width = x.shape[-2:]
        top = left = 0
        if height < self.min_size or width < self.min_size:
            x, (top, left) = reflect_pad_to(x, self.min_size)
        out = self.net(x)
        masks, aux = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
        return masks[..., top : top + height, left : left + width], aux


def _build_smp(spec: ModelSpec) -> nn.Module:
    architecture = SMP_ARCHITECTURES[spec.name]
    # smp swallows unknown keyword arguments: refuse them here instead
    accepted = set(inspect.signature(architecture).parameters) - set(_SET_BY_SPEC) - {"kwargs"}
    unknown = sorted(set(spec.extra) - accepted)
    if unknown:
        raise ConfigError(
            f"model {spec.name}: unknown extra options {unknown}; known: {sorted(accepted)}"
        )
    try:
        net = architecture(
            encoder_name=spec.encoder,
            encoder_weights=None,
            in_channels=spec.in_channels,
            classes=spec.hparams.out_channels,
            aux_params=smp_aux_params(spec),
            activation=None,  # logits: the loss and glacier_probability apply it
            **spec.extra,
        )
    except KeyError as exc:  # smp's message for an unknown encoder
        raise ConfigError(f"config key 'training.encoder': {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {spec.name!r} with extra options {spec.extra}: {exc}") from exc
    return SmpSegmenter(net, MIN_INPUT_SIZE.get(spec.name, 0))


_PROJECT_ARCHITECTURES: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "maresunet": build_maresunet,
    "wavemix": build_wavemix,
}


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (random weights unless a local file is given).

    The module has ``forward(x) -> (mask_logits, aux_logits | None)``, an
    ``aux_head`` attribute (None when ``spec.aux_weight == 0``) and, for the
    models with an encoder (all but WaveMix), an ``encoder`` attribute.
    """
    model = (
        _build_smp(spec)
        if spec.name in SMP_ARCHITECTURES
        else _PROJECT_ARCHITECTURES[spec.name](spec)
    )
    if spec.encoder_weights:
        encoder = getattr(model, "encoder", None)
        if encoder is None:
            raise ConfigError(
                f"config key 'training.encoder_weights': {spec.name} has no encoder to load into"
            )
        load_encoder_weights(encoder, spec.encoder_weights, spec.in_channels)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
