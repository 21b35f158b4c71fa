"""Tile windows and the spatial split: no pixel shared between splits."""

from __future__ import annotations

import numpy as np
import pytest

from glaciermap.data.tiling import (
    OUTSIDE,
    TEST,
    TRAIN,
    all_windows,
    covering_starts,
    plan_splits,
    split_raster,
    window_sums,
    windows_from_regions,
)
from glaciermap.errors import InputDataError


def pixels(windows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    covered = np.zeros(shape, dtype=bool)
    for row, col, height, width in windows:
        covered[row : row + height, col : col + width] = True
    return covered


def two_regions(shape=(200, 260), border=90) -> np.ndarray:
    regions = np.full(shape, OUTSIDE, np.uint8)
    regions[:border] = TEST
    regions[border:, 10:] = TRAIN
    return regions


def test_windows_and_their_sums():
    windows = all_windows((70, 100), 32, 16)
    assert len(windows) == 3 * 5 and windows[:, 2:].max() == 32
    assert windows[:, 0].max() + 32 <= 70 and windows[:, 1].max() + 32 <= 100
    values = np.arange(70 * 100).reshape(70, 100)
    for row, col, h, w in windows[[0, 7, -1]]:
        expected = values[row : row + h, col : col + w].sum()
        assert window_sums(values, np.array([[row, col, h, w]]))[0] == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_splits_share_no_pixel_and_stay_in_their_regions(seed):
    regions = two_regions()
    splits = plan_splits(regions, 32, 16, val_fraction=0.25, block_tiles=2, seed=seed)
    covered = {name: pixels(w, regions.shape) for name, w in splits.items()}
    assert all(len(w) for w in splits.values())
    assert not (covered["train"] & covered["test"]).any()
    assert not (covered["train"] & covered["val"]).any()
    assert not (covered["val"] & covered["test"]).any()
    assert (regions[covered["test"]] == TEST).all()
    assert (regions[covered["train"] | covered["val"]] == TRAIN).all()
    n_val, n_train = len(splits["val"]), len(splits["train"])
    assert n_val >= 0.25 * (n_val + n_train)


def test_split_raster_gives_back_the_same_windows():
    splits = plan_splits(two_regions(), 32, 16, val_fraction=0.2, block_tiles=2, seed=3)
    raster = split_raster((200, 260), splits)
    recovered = windows_from_regions(raster, 32, 16)
    for name, windows in splits.items():
        assert sorted(map(tuple, recovered[name])) == sorted(map(tuple, windows))


def test_seed_changes_the_validation_blocks():
    a = plan_splits(two_regions(), 32, 16, 0.2, 1, seed=0)["val"]
    b = plan_splits(two_regions(), 32, 16, 0.2, 1, seed=5)["val"]
    again = plan_splits(two_regions(), 32, 16, 0.2, 1, seed=0)["val"]
    assert np.array_equal(a, again) and not np.array_equal(a, b)


def test_region_too_small_for_one_tile():
    regions = two_regions()
    regions[:] = TRAIN
    regions[:20, :20] = TEST  # a 20 x 20 test region cannot hold a 32 x 32 tile
    with pytest.raises(InputDataError, match=r"data\.regions\.test.*no whole 32x32 tile"):
        plan_splits(regions, 32, 16, 0.2, 2, 0)


def test_train_region_too_small_to_split_off_validation():
    regions = np.full((100, 100), TEST, np.uint8)
    regions[60:, :40] = TRAIN  # one tile: nothing left for validation
    with pytest.raises(InputDataError, match=r"data\.regions\.train.*cannot be split"):
        plan_splits(regions, 32, 16, 0.2, 1, 0)


def test_covering_starts_cover_every_pixel_and_end_on_the_edge():
    """Chip tiles and prediction windows: one start when the axis fits, else every stride."""
    assert covering_starts(20, 32, 16) == [0]
    assert covering_starts(32, 32, 16) == [0]
    assert covering_starts(70, 32, 32) == [0, 32, 38]
    assert covering_starts(100, 32, 16)[-1] == 68
    assert covering_starts(96, 32, 32) == [0, 32, 64]
    for length in range(33, 200, 7):
        starts = covering_starts(length, 32, 24)
        covered = np.zeros(length, bool)
        for start in starts:
            covered[start : start + 32] = True
        assert covered.all() and starts[-1] + 32 == length
