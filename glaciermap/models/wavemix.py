"""WaveMix for segmentation, written for this project from the paper.

P. Jeevan, K. Viswanathan, A. Sethi, "WaveMix: A Resource-efficient Neural
Network for Image Analysis", 2022, arXiv:2205.14375.

The paper's ingredients, as implemented here:

- a convolutional *stem* that embeds the 4 bands into ``dim`` channels and
  reduces the resolution by ``2 ** stem_levels`` (stride-2 convolutions);
- *WaveMix blocks* that mix tokens with a 2D discrete wavelet transform instead
  of attention: a 1x1 convolution reduces ``dim`` to ``dim / 4`` channels, a
  one-level Haar DWT turns each into 4 sub-bands at half resolution (back to
  ``dim`` channels), an MLP of 1x1 convolutions (expansion ``mult``, GELU,
  dropout) mixes them, a transposed convolution restores the resolution, then
  batch normalisation and a residual connection;
- a *segmentation head* of transposed convolutions that upsamples back to the
  input size, then a 1x1 convolution to the output channels.

The Haar DWT is a fixed (not trained) depthwise convolution with stride 2
(:class:`HaarDWT`). Inputs must have H and W divisible by ``2 ** (stem_levels + 1)``,
so any multiple of 32 works with the defaults. ``spec.extra`` may set ``dim``
(default 64), ``depth`` (number of blocks, 4), ``mult`` (MLP expansion, 2),
``stem_levels`` (2) and ``mlp_dropout`` (0.0; the study's ``dropout`` belongs
to the auxiliary head). WaveMix has no pretrained encoder.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from glaciermap.errors import ConfigError
from glaciermap.models.aux_head import build_aux_head
from glaciermap.models.spec import ModelSpec


class HaarDWT(nn.Module):
    """One-level orthonormal 2D Haar DWT: (N, C, H, W) -> (N, 4C, H/2, W/2).

    Output channel ``4 c + k`` holds sub-band ``k`` of input channel ``c``:
    0 low-pass, 1 high-pass along columns (vertical edges), 2 high-pass along
    rows (horizontal edges), 3 diagonal. Orthonormal: the sum of squares is preserved.
    """

    def __init__(self) -> None:
        super().__init__()
        low, high = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
        # outer products of the 1D Haar filters (1, +-1) / sqrt(2): exactly +-1/2
        bands = [0.5 * torch.outer(a, b) for a in (low, high) for b in (low, high)]
        # a fixed filter bank, moved with the module but neither trained nor saved
        self.register_buffer("filters", torch.stack(bands).unsqueeze(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        filters: torch.Tensor = self.filters  # type: ignore[assignment]  # a registered buffer
        weight = filters.to(x.dtype).repeat(channels, 1, 1, 1)  # (4C, 1, 2, 2)
        return F.conv2d(x, weight, stride=2, groups=channels)


class WaveMixBlock(nn.Module):
    """Token mixing with a Haar DWT, an MLP and a transposed convolution (residual)."""

    def __init__(self, dim: int, mult: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"dim must be divisible by 4, got {dim}")
        self.reduce = nn.Conv2d(dim, dim // 4, 1)
        self.dwt = HaarDWT()
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, dim * mult, 1),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv2d(dim * mult, dim, 1),
        )
        self.upsample = nn.ConvTranspose2d(dim, dim, kernel_size=4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mlp(self.dwt(self.reduce(x)))
        return x + self.norm(self.upsample(mixed))


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class WaveMix(nn.Module):
    """Stem -> ``depth`` WaveMix blocks -> upsampling segmentation head."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 64,
        depth: int = 4,
        mult: int = 2,
        stem_levels: int = 2,
        mlp_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 1 or stem_levels < 1:
            raise ValueError(f"depth and stem_levels must be >= 1, got {depth}, {stem_levels}")
        widths = [max(dim >> (stem_levels - 1 - i), 8) for i in range(stem_levels)]
        stem, previous = [], in_channels
        for width in widths[:-1] + [dim]:
            stem.append(_down(previous, width))
            previous = width
        self.stem = nn.Sequential(*stem)
        self.blocks = nn.Sequential(*(WaveMixBlock(dim, mult, mlp_dropout) for _ in range(depth)))
        # mirror of the stem: halve the width at each x2 upsampling
        head, previous = [], dim
        for width in (max(dim >> (i + 1), 8) for i in range(stem_levels)):
            head.append(_up(previous, width))
            previous = width
        self.head = nn.Sequential(*head)
        self.classifier = nn.Conv2d(previous, out_channels, 1)
        self.features_channels = dim
        self.aux_head: nn.Module | None = None  # set by build_wavemix when aux_weight > 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.blocks(self.stem(x))
        masks = self.classifier(self.head(features))
        aux = self.aux_head(features) if self.aux_head is not None else None
        return masks, aux


_OPTIONS = {"dim": int, "depth": int, "mult": int, "stem_levels": int, "mlp_dropout": float}


def build_wavemix(spec: ModelSpec) -> WaveMix:
    """WaveMix for ``spec``; ``spec.encoder`` does not apply (WaveMix has no encoder)."""
    unknown = sorted(set(spec.extra) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"model wavemix: unknown extra options {unknown}")
    options = {key: _OPTIONS[key](value) for key, value in spec.extra.items()}
    try:
        model = WaveMix(spec.in_channels, spec.hparams.out_channels, **options)
    except ValueError as exc:
        raise ConfigError(f"model wavemix: {exc}") from exc
    model.aux_head = build_aux_head(spec, model.features_channels)
    return model
