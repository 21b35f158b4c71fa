"""The preparation rules on the embedded Everest data, run by Snakemake."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.features import rasterize

from glaciermap.data.tilestore import TileSet

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config.yaml"
TILES = "results/tiles/oct2000/train.npz"
TEST_GLACIER = "RGI60-15.10055"  # East Rongbuk, the demo's test glacier


def test_dry_run_plans_each_preparation_rule_once(tmp_path, dry_run):
    result = dry_run(tmp_path, DEMO, TILES)
    # one date: one scene, mask and tile set, one regions raster for all dates
    expected = {"prepare_scene": 1, "prepare_mask": 1, "prepare_regions": 1, "prepare_tiles": 1}
    assert result.counts == expected


def test_bad_glacier_id_fails_before_any_job(tmp_path, snakemake):
    config = yaml.safe_load(DEMO.read_text())
    config["data"]["regions"]["test"] = {"glaciers": ["RGI60-15.99999"]}
    result = snakemake(tmp_path, "-n", TILES, config=config, cores=None, check=False)
    assert result.returncode != 0
    message = "config key 'data.regions.test.glaciers': RGI60-15.99999 not in outline file"
    assert message in result.output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("inference", "message"),
    [
        ({"window": 64, "margin": 64}, "config key 'inference.margin': 64 not in [0, window = 64)"),
        ({"margin": 64}, "config key 'inference.margin': 64 is not less than the window"),
    ],
)
def test_bad_inference_window_fails_before_any_job(tmp_path, snakemake, inference, message):
    """Window and margin are checked together (the demo's tiles are 64 px) at once."""
    config = yaml.safe_load(DEMO.read_text())
    config["inference"] = inference
    result = snakemake(tmp_path, "-n", TILES, config=config, cores=None, check=False)
    assert result.returncode != 0
    assert message in result.output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_everest_tiles_are_georeferenced_and_the_test_glacier_never_trains(tmp_path, snakemake):
    snakemake(tmp_path, TILES, config=DEMO, cores=2)
    results = tmp_path / "results"
    with rasterio.open(results / "scenes/oct2000.tif") as scene_file:
        scene, crs, transform = scene_file.read(), scene_file.crs, scene_file.transform
        assert scene_file.descriptions == ("blue", "green", "red", "nir")
    with rasterio.open(ROOT / "data/everest/LE71400412000304SGS00_RGB.tif") as source:
        assert source.crs == crs and source.transform == transform
        np.testing.assert_allclose(scene[0], source.read(3) / 255, rtol=1e-6)  # blue = band 3
    with rasterio.open(results / "masks/oct2000.tif") as mask_file:
        assert mask_file.crs == crs and mask_file.transform == transform
        mask = mask_file.read(1)
    regions = rasterio.open(results / "regions.tif").read(1)

    tiles = {s: TileSet.load(results / f"tiles/oct2000/{s}.npz") for s in ("train", "val", "test")}
    assert len(tiles["train"]) >= 150 and len(tiles["val"]) and len(tiles["test"])
    for split_tiles in tiles.values():
        assert split_tiles.crs == crs.to_wkt()
        for i in (0, len(split_tiles) - 1):
            row, col, height, width = split_tiles.windows[i]
            # Same map coordinates for a tile pixel and the scene pixel it was cut from.
            for r, c in ((0, 0), (height - 1, width - 1), (7, 30)):
                assert split_tiles.tile_transform(i) @ (c + 0.5, r + 0.5) == pytest.approx(
                    transform @ (col + c + 0.5, row + r + 0.5)
                )
            window = (slice(row, row + height), slice(col, col + width))
            np.testing.assert_array_equal(split_tiles.images[i], scene[(slice(None), *window)])
            np.testing.assert_array_equal(split_tiles.masks[i], mask[window])

    # No pixel of East Rongbuk lies in a train or validation tile.
    outlines = gpd.read_file(ROOT / "data/everest/15_rgi60_glacier_outlines.gpkg").to_crs(crs)
    rongbuk = outlines[outlines["RGIId"] == TEST_GLACIER].geometry
    inside = rasterize(rongbuk, out_shape=regions.shape, transform=transform) == 1
    assert inside.sum() > 20000
    assert set(np.unique(regions[inside])) <= {0, 3}
    for name in ("train", "val"):
        for row, col, height, width in tiles[name].windows:
            assert not inside[row : row + height, col : col + width].any()
