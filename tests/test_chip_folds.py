"""Geographic k-fold cross-validation of chips (glaciermap.data.chip_folds): folds of
whole ground groups, balanced by labelled pixels; one out-of-fold prediction per
labelled pixel; pooled counts are the sum of the folds'."""

from __future__ import annotations

import numpy as np
import pytest
from chipdata import ChipSpec, site

from glaciermap.data.chip_folds import assign_folds, fold_splits, pooled_out_of_fold
from glaciermap.data.chip_split import footprints, ground_groups
from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import ConfusionCounts

K = 3


def two_year_chips(n_sites: int = 9) -> tuple[list, list[int]]:
    """Per site a chip of 2019 and one of 2021 shifted by a few pixels, some in another
    CRS (they share ground); sites differ in size so the labelled pixels differ."""
    grids, site_of = [], []
    for i in range(n_sites):
        lon, lat = site(i)
        shape = (48 + 8 * (i % 3), 48)
        for shift, crs in ((0.0, "EPSG:32632"), (0.001, ("EPSG:32632", "EPSG:3035")[i % 2])):
            grids.append(ChipSpec(f"s{i}", lon + shift, lat, crs=crs, shape=shape).grid())
            site_of.append(i)
    return grids, site_of


def test_folds_partition_the_ground_groups_and_are_balanced():
    grids, site_of = two_year_chips()
    labelled = [g.width * g.height for g in grids]
    folds = assign_folds(ground_groups(grids, 100), labelled, K)
    assert set(folds) == set(range(K))
    # Both years of a site (overlapping ground, two CRSs) are in one fold.
    for i in set(site_of):
        assert len({int(f) for f, s in zip(folds, site_of, strict=True) if s == i}) == 1
    # No ground in two folds: footprints of different folds do not overlap.
    shapes = footprints(grids)
    for a in range(K):
        for b in range(a + 1, K):
            overlap = shapes[folds == a].union_all().intersection(shapes[folds == b].union_all())
            assert overlap.area < 1.0  # m2
    load = [sum(n for n, f in zip(labelled, folds, strict=True) if f == k) for k in range(K)]
    largest_group = max(2 * n for n in labelled)
    assert max(load) - min(load) <= largest_group


def test_every_labelled_pixel_gets_exactly_one_out_of_fold_prediction():
    grids, _ = two_year_chips()
    rng = np.random.default_rng(0)
    labels = [rng.choice([0, 1, 255], size=(g.height, g.width), p=[0.5, 0.4, 0.1]) for g in grids]
    labelled = [int((m != 255).sum()) for m in labels]
    glacier = [int((m == 1).sum()) for m in labels]
    folds, splits = fold_splits(grids, labelled, glacier, K, 0.3, 100, seed=0)
    predictions = [np.zeros(m.shape, int) for m in labels]  # how often each pixel is predicted
    for fold, split in enumerate(splits):
        tested = [i for i, s in enumerate(split) if s == "test"]
        assert tested == [i for i in range(len(grids)) if folds[i] == fold]
        assert {"train", "val"} <= set(split)  # each fold model has its own validation part
        for i in tested:
            predictions[i] += labels[i] != 255
        # The fold model never saw its test ground.
        shapes = footprints(grids)
        seen = shapes[[s in ("train", "val") for s in split]].union_all()
        assert seen.intersection(shapes[[s == "test" for s in split]].union_all()).area < 1.0
    for mask, count in zip(labels, predictions, strict=True):
        assert (count[mask != 255] == 1).all() and (count[mask == 255] == 0).all()


def test_pooled_out_of_fold_counts_are_the_sum_of_the_folds():
    grids, _ = two_year_chips()
    rng = np.random.default_rng(1)
    labels = [rng.integers(0, 2, (g.height, g.width)) for g in grids]
    predicted = [rng.random(m.shape) < 0.3 + 0.5 * m for m in labels]
    folds = assign_folds(ground_groups(grids, 100), [m.size for m in labels], K)

    def counts(chips) -> ConfusionCounts:
        truth = np.concatenate([labels[i].ravel() == 1 for i in chips])
        guess = np.concatenate([predicted[i].ravel() for i in chips])
        return ConfusionCounts(
            int((guess & truth).sum()), int((guess & ~truth).sum()),
            int((~guess & truth).sum()), int((~guess & ~truth).sum()),
        )  # fmt: skip

    per_fold = [counts(np.flatnonzero(folds == k)) for k in range(K)]
    result = pooled_out_of_fold(per_fold)
    everything = counts(range(len(grids)))
    assert result["pooled"] == everything.to_dict()
    for name in ("tp", "fp", "fn", "tn"):
        assert result["pooled"][name] == sum(getattr(c, name) for c in per_fold)
    f1s = [c.scores()["f1"] for c in per_fold]
    assert result["fold_f1"] == f1s
    assert result["fold_f1_mean"] == pytest.approx(np.mean(f1s))
    assert result["fold_f1_std"] == pytest.approx(np.std(f1s, ddof=1))


def test_too_few_ground_groups_for_the_folds_are_refused():
    grids, _ = two_year_chips(n_sites=2)
    with pytest.raises(InputDataError, match=r"2 ground group\(s\).*fewer than the 3 folds"):
        assign_folds(ground_groups(grids, 100), [1] * len(grids), 3)
