"""Settings as rules pass them to jobs (``params:``): plain values in a canonical order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def canonical(value: Any) -> Any:
    """Dicts with sorted keys, recursively, tuples as lists.

    Snakemake compares params as written: reordering keys in the config file must
    not rerun a job, and a job must see exactly the values it is tracked with.
    """
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value
