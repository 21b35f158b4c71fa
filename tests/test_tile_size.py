"""Tiles per dataset: data.tiles overridden by a scene date or chip dataset, in pixels
or metres, reaching the tile stores; a run's batches hold tiles of one size, and the
model sees every size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from chipdata import ChipSpec, dataset_block, site, write_chip
from test_data_chips import TILES, prepare
from test_training_run import TinyNet, settings, write_date

from glaciermap.config import check_config, validate_config
from glaciermap.data.tile_size import resolve_tiles
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import ConfigError
from glaciermap.training.run import batch_indices, train_run
from glaciermap.training.tiles import load_tiles

BASE = {"size": 128, "stride": 64}


def test_an_override_in_pixels_or_metres_gives_size_and_stride_in_pixels():
    assert resolve_tiles(BASE, None) == resolve_tiles(BASE, {}) == {
        **resolve_tiles(BASE, None), "size": 128, "stride": 64
    }  # fmt: skip
    assert resolve_tiles(BASE, {"size": 256})["stride"] == 128  # the ratio of data.tiles
    assert resolve_tiles(BASE, {"size": 64, "stride": 16})["stride"] == 16
    # 1280 m of 10 m pixels: 128 px; of 30 m pixels 42.7 -> 32 (a multiple of 32)
    assert resolve_tiles(BASE, {"size_m": 1280, "stride_m": 640}, 10.0)["size"] == 128
    assert resolve_tiles(BASE, {"size_m": 1280, "stride_m": 640}, 10.0)["stride"] == 64
    assert resolve_tiles(BASE, {"size_m": 1280}, 30.0) == {
        **resolve_tiles(BASE, None), "size": 32, "stride": 16
    }  # fmt: skip
    assert resolve_tiles(BASE, {"size_m": 100}, 30.0)["size"] == 32  # at least 32
    with pytest.raises(ConfigError, match=r"'x': give size or size_m, not both"):
        resolve_tiles(BASE, {"size": 64, "size_m": 640}, 10.0, key="x")
    with pytest.raises(ConfigError, match=r"'x'.*pixel size in metres"):
        resolve_tiles(BASE, {"size_m": 640}, None, key="x")


def test_config_checks_the_overrides(tmp_path):
    write_chip(tmp_path, ChipSpec("c", *site(0)))
    chips = {
        "alps": dataset_block(tmp_path, split="train_val", tiles={"size": 64, "stride": 96}),
        "k": dataset_block(tmp_path, split="test"),
    }
    with pytest.raises(ConfigError, match=r"'data\.chips\.alps\.tiles\.stride'"):
        check_config(validate_config({"data": {"chips": chips}}), tmp_path)
    chips["alps"]["tiles"] = {"size": 48}
    with pytest.raises(ConfigError, match=r"'data\.chips\.alps\.tiles\.size'"):
        validate_config({"data": {"chips": chips}})


@pytest.mark.parametrize(
    ("override", "size"), [(None, 32), ({"size": 64, "stride": 64}, 64), ({"size_m": 640}, 64)]
)
def test_a_chip_dataset_tile_size_reaches_its_tile_store(tmp_path, override, size):
    for i in range(3):  # 10 m chips of 72 px
        write_chip(tmp_path, ChipSpec(f"c{i}", *site(i), shape=(72, 72), seed=i))
    block = dataset_block(tmp_path, split="train", **({"tiles": override} if override else {}))
    tiles = TileSet.load(prepare(block, tmp_path, TILES)["train"])
    assert tiles.images.shape[1:] == (4, size, size) and tiles.masks.shape[1:] == (size, size)
    # Each chip is covered: tiles every stride plus one ending on each edge.
    per_chip = 4 if size == 64 else 9
    assert len(tiles) == 3 * per_chip


def test_batches_hold_tiles_of_one_size_and_one_group_is_unchanged():
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    assert [b.tolist() for b in batch_indices(order, 4, torch.zeros(23, dtype=torch.int64))] == [
        b.tolist() for b in batch_indices(order, 4)
    ]
    group_of = torch.tensor([0] * 10 + [1] * 13)
    batches = batch_indices(order, 4, group_of)
    assert all(len(set(group_of[b].tolist())) == 1 for b in batches)
    seen = torch.cat(batches).tolist()
    assert len(seen) == len(set(seen)) and len(seen) >= 23 - 2  # a singleton per group dropped
    assert {int(group_of[b[0]]) for b in batches} == {0, 1}


class SizeSpy(TinyNet):
    """TinyNet that records the tile sizes of its training batches."""

    seen: set[int] = set()

    def forward(self, x):
        if self.training:
            SizeSpy.seen.add(int(x.shape[-1]))
        return super().forward(x)


def test_a_run_trains_on_tile_stores_of_two_sizes(tmp_path):
    small = write_date(tmp_path / "small", seed=0)  # 32 px tiles
    large = tmp_path / "large"
    large.mkdir()
    for split in ("train", "val"):
        tiles = TileSet.load(small[split])
        # 64 px tiles: each 32 px tile repeated 2 x 2
        images = np.tile(tiles.images, (1, 1, 2, 2))
        masks = np.tile(tiles.masks, (1, 2, 2))
        windows = tiles.windows.copy()
        windows[:, 2:] = 64
        TileSet(images, masks, windows, tiles.crs, tiles.transform, tiles.ranges).save(
            large / f"{split}.npz"
        )
    assert load_tiles([small["train"], large / "train.npz"]).sizes == [32, 64]
    SizeSpy.seen = set()
    metrics = train_run(
        settings(epochs=1),
        [small["train"], large / "train.npz"],
        [small["val"], large / "val.npz"],
        [small["stats"], small["stats"]],
        tmp_path / "run",
        build=SizeSpy,
    )
    assert SizeSpy.seen == {32, 64}
    assert metrics["n_train_tiles"] == 16 and metrics["n_val_tiles"] == 8
    best = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert best["tile_size"] == 64


def test_an_override_of_a_scene_date_is_in_its_tile_params():
    from glaciermap.data.prepare import scene_tiles

    data = {"tiles": BASE, "scenes": {"july": {"acquired": "2020-07-01"}, "aug": {
        "acquired": "2020-08-01", "tiles": {"size_m": 1920}}}}  # fmt: skip
    assert scene_tiles(data, "july") == BASE
    assert scene_tiles(data, "aug")["override"] == {"size_m": 1920}
