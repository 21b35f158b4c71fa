"""Geographic k-fold cross-validation of a chip dataset: folds of whole ground groups.

The ground groups are those of the train / validation split
(:func:`glaciermap.data.chip_split.ground_groups`: chips sharing ground, e.g. one
place in two years, or a ``block_m`` block, stay together), so no ground is in
two folds. Groups are assigned to ``k`` folds balanced by labelled pixels:
largest group first, each to the fold holding the fewest labelled pixels so far
(the longest-processing-time rule; ties go to the lower fold). Fold ``f`` is
tested on its own chips and trains on the others, whose validation part is
taken from them by the balanced train / validation split; every labelled pixel
is thus tested exactly once, by the one fold model that never saw it.

Out-of-fold scores are pooled by summing the folds' confusion counts
(:func:`pooled_out_of_fold`), the DL4GAM way of reporting one score for the
whole dataset, with the spread of the folds' own scores beside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from glaciermap.data.chip_split import assign_train_val, ground_groups
from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import ConfusionCounts
from glaciermap.io.grid import Grid


def assign_folds(
    groups: Sequence[int] | np.ndarray, labelled: Sequence[int], k: int, key: str = "folds"
) -> np.ndarray:
    """Fold (0 .. k-1) of each chip, whole ``groups`` balanced by ``labelled`` pixels."""
    groups = np.asarray(groups)
    weight = np.asarray(labelled, dtype=np.float64)
    ids = np.unique(groups)
    size = {int(g): float(weight[groups == g].sum()) for g in ids}
    with_pixels = [g for g in size if size[g] > 0]
    if k < 2:
        raise InputDataError(f"{key}: {k} fold(s); cross-validation needs at least 2")
    if len(with_pixels) < k:
        raise InputDataError(
            f"{key}: the {len(groups)} chips form {len(with_pixels)} ground group(s) with "
            f"labelled pixels, fewer than the {k} folds; make validation.block_m smaller "
            "or use fewer folds"
        )
    load = np.zeros(k)
    fold_of_group = {}
    for g in sorted(size, key=lambda g: (-size[g], g)):
        fold = int(np.argmin(load))  # the first of the lightest folds
        fold_of_group[g] = fold
        load[fold] += size[g]
    return np.array([fold_of_group[int(g)] for g in groups], dtype=np.int64)


def fold_splits(
    grids: Sequence[Grid],
    labelled: Sequence[int],
    glacier: Sequence[int],
    k: int,
    fraction: float,
    block_m: float,
    seed: int,
    key: str = "folds",
) -> tuple[np.ndarray, list[list[str]]]:
    """The fold of each chip, and per fold the split (``train``, ``val`` or ``test``)
    of each chip: its own chips test, the others train, less a validation part
    balanced as in :func:`glaciermap.data.chip_split.assign_train_val`."""
    folds = assign_folds(ground_groups(grids, block_m), labelled, k, key)
    splits = []
    for fold in range(k):
        rest = [int(i) for i in np.flatnonzero(folds != fold)]
        inner = assign_train_val(
            [grids[i] for i in rest],
            [labelled[i] for i in rest],
            [glacier[i] for i in rest],
            fraction,
            block_m,
            seed,
            key=f"{key} (fold {fold})",
        )
        split = ["test"] * len(grids)
        for i, name in zip(rest, inner, strict=True):
            split[i] = name
        splits.append(split)
    return folds, splits


def pooled_out_of_fold(fold_counts: Sequence[ConfusionCounts]) -> dict[str, Any]:
    """One score for the whole dataset from each fold's counts on its own test chips:
    ``pooled`` (the summed counts and their scores), the folds' F1 (``fold_f1``) and
    their mean and standard deviation (``None`` for fewer than two folds)."""
    if not fold_counts:
        raise InputDataError("no fold was scored: nothing to pool")
    pooled = sum(fold_counts, ConfusionCounts())
    f1s = [counts.scores()["f1"] for counts in fold_counts]
    known = [f for f in f1s if f is not None]
    return {
        "pooled": pooled.to_dict(),
        "fold_f1": f1s,
        "fold_f1_mean": statistics.mean(known) if known else None,
        "fold_f1_std": statistics.stdev(known) if len(known) > 1 else None,
    }
