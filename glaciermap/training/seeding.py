"""Seeds and random-number-generator states, so a run can be repeated and resumed exactly.

A run draws from four global generators (Python, NumPy, torch CPU, torch CUDA)
and from one dedicated ``torch.Generator`` for the tile order and the
augmentation. All of them are captured in ``last.pt`` and restored on resume,
as tensors and plain Python values only, so that ``last.pt`` loads with
``torch.load(weights_only=True)`` (no pickled objects: docs/robustness.md).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed every global generator and return the run's data generator (CPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def capture_rng_states(data_generator: torch.Generator) -> dict[str, Any]:
    """Everything needed to continue the random streams where they are now.

    Python's state is (version, tuple of ints, gauss); NumPy's legacy state is
    (name, uint32 key array, pos, has_gauss, cached_gaussian): the key array is
    stored as an int64 tensor, the rest as plain values.
    """
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [
            str(name),
            torch.from_numpy(np.asarray(key, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_generator.get_state(),
    }


def restore_rng_states(states: dict[str, Any], data_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng_states`; CUDA states are skipped on a CPU-only machine."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    data_generator.set_state(states["data"])
