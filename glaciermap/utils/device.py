"""Which torch device a run or a prediction uses."""

from __future__ import annotations

import torch

from glaciermap.errors import ConfigError


def resolve_device(requested: str = "auto", key: str = "training.device") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error naming ``key``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key '{key}': cuda requested but no GPU is visible")
    return torch.device(requested)
