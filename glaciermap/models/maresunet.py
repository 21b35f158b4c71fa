"""MAResUNet: multistage attention ResU-Net, written for this project from the paper.

R. Li, S. Zheng, C. Duan, J. Su, C. Zhang, "Multistage Attention ResU-Net for
Semantic Segmentation of Fine-Resolution Remote Sensing Images", IEEE GRSL
2021, arXiv:2011.14302.

The paper's ingredients, as implemented here:

- a ResNet encoder (any smp encoder name works; resnet18/34 as in the paper);
- the *linear attention mechanism* (LAM): dot-product attention whose softmax
  is replaced by its first-order Taylor expansion on L2-normalised queries and
  keys, so that it costs O(N) instead of O(N^2) in the number of pixels N::

      D(Q, K, V)_n = (sum_j V_j + Q_n^T sum_j K_j V_j^T) / (N + Q_n^T sum_j K_j)

- channel attention on the same features (as in DANet, which the paper builds on);
- *multistage* attention: an attention block (position LAM + channel attention,
  each added to its input through a learnt scale initialised at zero) at the
  bottleneck and in every decoder stage, where the upsampled decoder features
  are fused with the encoder skip features of that scale, followed by a
  residual convolution block (the "Res" of ResU-Net).

The mask logits are upsampled to the input size (any multiple of 32). ``spec.extra``
may set ``decoder_channels`` (5 ints, deepest first) and ``attention_reduction``.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.nn import functional as F

from glaciermap.errors import ConfigError
from glaciermap.models.aux_head import build_aux_head
from glaciermap.models.spec import ModelSpec

DEFAULT_DECODER_CHANNELS = (128, 64, 32, 32, 16)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LinearAttention(nn.Module):
    """Position attention in O(N) with the paper's Taylor-expanded softmax (LAM)."""

    def __init__(self, channels: int, reduction: int = 8, eps: float = 1e-6) -> None:
        super().__init__()
        key_channels = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        n = height * width
        q, k, v = self.query(x), self.key(x), self.value(x)
        # sums over all pixels lose too much in bf16: keep them in float32 under autocast
        with torch.autocast(x.device.type, enabled=False):
            q = F.normalize(q.float().flatten(2), dim=1)  # (B, Ck, N)
            k = F.normalize(k.float().flatten(2), dim=1)  # (B, Ck, N)
            v = v.float().flatten(2)  # (B, C, N)
            kv = torch.einsum("bkn,bcn->bkc", k, v)  # sum_j K_j V_j^T
            numerator = v.sum(dim=2, keepdim=True) + torch.einsum("bkn,bkc->bcn", q, kv)
            denominator = n + torch.einsum("bkn,bk->bn", q, k.sum(dim=2))
            out = numerator / (denominator.unsqueeze(1) + self.eps)
        return out.view(batch, channels, height, width).to(x.dtype)


class ChannelAttention(nn.Module):
    """Channel attention (a C x C affinity, cheap for any image size), as in DANet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # float32, as above
            flat = x.float().flatten(2)  # (B, C, N)
            energy = torch.bmm(flat, flat.transpose(1, 2))
            # DANet's trick: subtract from the row maximum so that the softmax is stable
            attention = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
            out = torch.bmm(attention, flat)
        return out.view_as(x).to(x.dtype)


class AttentionBlock(nn.Module):
    """Position (linear) and channel attention added to the input (one 'stage').

    Each branch has a learnt scale initialised at zero, so that a fresh block is
    the identity and the network learns how much to attend (as in DANet).
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.position = LinearAttention(channels, reduction)
        self.channel = ChannelAttention()
        self.position_scale = nn.Parameter(torch.zeros(1))
        self.channel_scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.position_scale * self.position(x) + self.channel_scale * self.channel(x)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class DecoderStage(nn.Module):
    """Upsample x2, fuse with the skip features, attend, refine with a residual block."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, reduction: int
    ) -> None:
        super().__init__()
        self.fuse = conv_bn_relu(in_channels + skip_channels, out_channels)
        self.attention = AttentionBlock(out_channels, reduction)
        self.refine = ResidualBlock(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.refine(self.attention(self.fuse(x)))


class MAResUNet(nn.Module):
    """ResNet encoder + multistage linear-attention decoder; see the module docstring."""

    def __init__(
        self,
        encoder_name: str,
        in_channels: int,
        out_channels: int,
        decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
        attention_reduction: int = 8,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 values, got {list(decoder_channels)}")
        self.encoder = smp.encoders.get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=None
        )
        # encoder.out_channels: the input, then strides 2, 4, 8, 16, 32
        encoder_channels = list(self.encoder.out_channels)
        deepest = encoder_channels[-1]
        self.bottleneck = AttentionBlock(deepest, attention_reduction)
        # skips at strides 16, 8, 4, 2, then none at full resolution
        skips = encoder_channels[-2:0:-1] + [0]
        stages, previous = [], deepest
        for skip, channels in zip(skips, decoder_channels, strict=True):
            stages.append(DecoderStage(previous, skip, channels, attention_reduction))
            previous = channels
        self.decoder = nn.ModuleList(stages)
        self.segmentation_head = nn.Conv2d(previous, out_channels, 3, padding=1)
        self.aux_head: nn.Module | None = None  # set by build_maresunet when aux_weight > 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.encoder(x)
        deepest = features[-1]
        d = self.bottleneck(deepest)
        skips = features[-2:0:-1] + [None]
        for stage, skip in zip(self.decoder, skips, strict=True):
            d = stage(d, skip)
        masks = self.segmentation_head(d)
        aux = self.aux_head(deepest) if self.aux_head is not None else None
        return masks, aux


def build_maresunet(spec: ModelSpec) -> MAResUNet:
    """MAResUNet for ``spec`` (extra: ``decoder_channels``, ``attention_reduction``)."""
    extra = dict(spec.extra)
    decoder_channels = tuple(extra.pop("decoder_channels", DEFAULT_DECODER_CHANNELS))
    reduction = int(extra.pop("attention_reduction", 8))
    if extra:
        raise ConfigError(f"model maresunet: unknown extra options {sorted(extra)}")
    try:
        model = MAResUNet(
            spec.encoder, spec.in_channels, spec.hparams.out_channels, decoder_channels, reduction
        )
    except KeyError as exc:  # smp's message for an unknown encoder
        raise ConfigError(f"config key 'training.encoder': {exc.args[0]}") from exc
    except ValueError as exc:
        raise ConfigError(f"model maresunet: {exc}") from exc
    model.aux_head = build_aux_head(spec, model.encoder.out_channels[-1])
    return model
