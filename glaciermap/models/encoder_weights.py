"""Load an encoder's weights from a local file (nothing is ever downloaded).

The file holds a ``state_dict`` of the encoder (``torch.save(encoder.state_dict())``,
optionally under a ``"state_dict"`` key and/or with an ``encoder.`` prefix, as in
a whole-model state dict). Loading is strict: every encoder weight must be in
the file with the right shape, except the first convolution when the file was
made for another number of input channels (e.g. 3-band ImageNet weights for our
4 bands). That one is adapted the way segmentation-models-pytorch adapts
pretrained weights (``encoders._utils.patch_first_conv``): for one channel the
RGB kernels are summed; otherwise input channel ``i`` reuses the kernel of file
channel ``i % c_file`` and all are scaled by ``c_file / in_channels`` so that the
layer's response to an input of constant magnitude stays the same.
Keys in the file that the encoder lacks (e.g. a classifier's ``fc.*``) are ignored.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from glaciermap.errors import InputDataError

log = logging.getLogger(__name__)

_PREFIXES = ("module.", "encoder.")


def adapt_first_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Kernel (out, c_file, kh, kw) -> (out, in_channels, kh, kw), as smp adapts pretrained ones."""
    c_file = weight.shape[1]
    if in_channels == 1:
        return weight.sum(1, keepdim=True)
    channels = [weight[:, i % c_file] for i in range(in_channels)]
    return torch.stack(channels, dim=1) * (c_file / in_channels)


def _first_conv_key(encoder: nn.Module) -> str | None:
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{name}.weight"
    return None


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise InputDataError(f"encoder weights file not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign file
        raise InputDataError(f"{file}: not a torch weights file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputDataError(f"{file}: expected a state_dict of tensors")
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def load_encoder_weights(
    encoder: nn.Module, path: str | os.PathLike[str], in_channels: int
) -> None:
    """Load ``path`` into ``encoder`` in place (see the module docstring for the rules)."""
    file = Path(path)
    state = _read_state_dict(file)
    target = encoder.state_dict()
    missing = [key for key in target if key not in state]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputDataError(f"{file}: {len(missing)} encoder weights missing: {shown}")
    first_conv = _first_conv_key(encoder)
    loaded: dict[str, torch.Tensor] = {}
    for key, expected in target.items():
        value = state[key]
        if value.shape != expected.shape:
            same_kernel = value.ndim == 4 and value.shape[0] == expected.shape[0]
            if key == first_conv and same_kernel and value.shape[2:] == expected.shape[2:]:
                log.info(
                    "%s: adapting %s from %d to %d input channels",
                    file,
                    key,
                    value.shape[1],
                    in_channels,
                )
                value = adapt_first_conv_weight(value, in_channels)
            else:
                raise InputDataError(
                    f"{file}: weight {key} has shape {tuple(value.shape)}, "
                    f"the encoder needs {tuple(expected.shape)}"
                )
        loaded[key] = value
    ignored = sorted(set(state) - set(target))
    if ignored:
        log.info(
            "%s: ignoring %d weights the encoder lacks (e.g. %s)", file, len(ignored), ignored[0]
        )
    nn.Module.load_state_dict(encoder, loaded, strict=True)
