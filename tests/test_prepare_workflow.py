"""The preparation rules on the embedded Everest data, run by Snakemake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.features import rasterize

from glaciermap.data.tilestore import TileSet

ROOT = Path(__file__).resolve().parents[1]
TEST_GLACIER = "RGI60-15.10055"  # East Rongbuk, the demo's test glacier


def snakemake(workdir: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` (which sees the demo data as ./data)."""
    data = workdir / "data"
    if not data.exists():
        data.symlink_to(ROOT / "data")
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    command += ["--configfile", str(config or ROOT / "config.yaml"), *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_dry_run_lists_the_preparation_jobs(tmp_path):
    result = snakemake(tmp_path, "-n", "results/tiles/oct2000/train.npz")
    assert result.returncode == 0, result.stderr
    for rule in ("prepare_scene", "prepare_mask", "prepare_regions", "prepare_tiles"):
        assert f"rule {rule}:" in result.stdout


def test_bad_glacier_id_fails_before_any_job(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"]["regions"]["test"] = {"glaciers": ["RGI60-15.99999"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "-n", "results/tiles/oct2000/train.npz", config=path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config key 'data.regions.test.glaciers': RGI60-15.99999 not in outline file" in output
    assert not (tmp_path / "results").exists()


def test_lint_reports_nothing_for_the_preparation_rules(tmp_path):
    result = snakemake(tmp_path, "--lint")
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Error" not in output  # the workflow was parsed
    assert "prepare" not in output


@pytest.mark.slow
def test_everest_tiles_are_georeferenced_and_the_test_glacier_never_trains(tmp_path):
    result = snakemake(tmp_path, "--cores", "2", "results/tiles/oct2000/train.npz")
    assert result.returncode == 0, result.stderr
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
