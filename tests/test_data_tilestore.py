"""The tile store file and normalisation statistics."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from glaciermap.data.normalization import band_stats, pool_stats
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError

SCENE = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 7000000.0)


def tile_set(n: int = 3, size: int = 8, seed: int = 0) -> TileSet:
    rng = np.random.default_rng(seed)
    windows = np.array([[16 * i, 8 * i, size, size] for i in range(n)])
    return TileSet(
        images=rng.random((n, 4, size, size), dtype=np.float32),
        masks=rng.integers(0, 2, (n, size, size), dtype=np.uint8),
        windows=windows,
        crs=CRS.from_epsg(32633).to_wkt(),
        transform=np.array(tuple(SCENE)[:6]),
        ranges=rng.random((n, 4, 2), dtype=np.float32),
    )


def test_save_load_round_trip(tmp_path):
    tiles = tile_set()
    tiles.save(tmp_path / "train.npz")
    loaded = TileSet.load(tmp_path / "train.npz")
    assert len(loaded) == 3
    np.testing.assert_array_equal(loaded.images, tiles.images)
    np.testing.assert_array_equal(loaded.masks, tiles.masks)
    np.testing.assert_array_equal(loaded.windows, tiles.windows)
    np.testing.assert_array_equal(loaded.ranges, tiles.ranges)
    assert CRS.from_wkt(loaded.crs) == CRS.from_epsg(32633)
    with np.load(tmp_path / "train.npz") as raw:  # the documented arrays, no pickles
        assert raw["images"].dtype == np.float32 and raw["masks"].dtype == np.uint8
        assert raw["windows"].dtype == np.int64 and raw["transform"].shape == (6,)
        assert raw["crs"].shape == ()
    assert [p.name for p in tmp_path.iterdir()] == ["train.npz"]


def test_tile_transform_puts_tile_pixels_at_scene_coordinates():
    tiles = tile_set()
    row, col = tiles.windows[2, :2]
    assert tiles.tile_transform(2) @ (0, 0) == SCENE @ (col, row)
    assert tiles.tile_transform(2) @ (3.5, 5.5) == SCENE @ (col + 3.5, row + 5.5)


def test_load_refuses_a_broken_file(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputDataError, match=r"bad\.npz"):
        TileSet.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", images=np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(InputDataError, match=r"partial\.npz lacks masks"):
        TileSet.load(tmp_path / "partial.npz")


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        tile_set().save(tmp_path / "val.npz")
    assert list(tmp_path.iterdir()) == []


def test_band_stats_skip_nodata_and_pooling_equals_stats_of_all_pixels():
    a, b = tile_set(3, seed=1), tile_set(5, seed=2)
    valid_a = np.ones((3, 8, 8), bool)
    valid_a[0, :4] = False
    valid_b = np.ones((5, 8, 8), bool)
    stats_a = band_stats(a.images, valid_a)
    stats_b = band_stats(b.images, valid_b)
    assert stats_a["count"] == 3 * 64 - 32
    assert stats_a["mean"][1] == pytest.approx(a.images[:, 1][valid_a].mean())
    pooled = pool_stats([stats_a, stats_b])
    together = np.concatenate([a.images[:, 2][valid_a], b.images[:, 2][valid_b]])
    assert pooled["count"] == together.size
    assert pooled["mean"][2] == pytest.approx(together.mean())
    assert pooled["std"][2] == pytest.approx(together.std())
    single = pool_stats([stats_a])
    assert single["count"] == stats_a["count"]
    assert single["std"] == pytest.approx(stats_a["std"])
