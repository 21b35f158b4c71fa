"""Acquire without a network: item choice, L2A offset, grids, config checks, local outlines."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import yaml
from affine import Affine
from rasterio.crs import CRS

from glaciermap.acquire import commands
from glaciermap.acquire.grid import Grid, area_grid, snapped_grid, utm_crs
from glaciermap.acquire.settings import (
    AreaSpec,
    acquired_files,
    parse_window,
    scene_targets,
    scl_invalid_classes,
    scl_targets,
)
from glaciermap.acquire.stac import (
    Choice,
    boa_offset,
    candidates,
    choose_items,
    processing_baseline,
    read_on_grid,
)
from glaciermap.config import validate_config
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io.scenes import read_scene, write_scene
from glaciermap.io.sentinel2 import BAND_IDS, to_reflectance

DATA = Path(__file__).resolve().parents[1] / "data" / "everest"
AREA = (-45.5, 61.15, -45.3, 61.25)
WINDOW = parse_window("july", "2023-07-01..2023-07-31")


def item(item_id: str, when: str, cloud: float | None, area=AREA, **props: object) -> pystac.Item:
    west, south, east, north = area
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    properties = dict(props)
    if cloud is not None:
        properties["eo:cloud_cover"] = cloud
    return pystac.Item(
        item_id,
        {"type": "Polygon", "coordinates": [ring]},
        list(area),
        dt.datetime.fromisoformat(when),
        properties,
    )


def test_window_parsing_and_middle():
    assert WINDOW.middle == dt.datetime(2023, 7, 16, 12, tzinfo=dt.UTC)
    assert WINDOW.contains(dt.datetime(2023, 7, 31, 23, tzinfo=dt.UTC))
    assert not WINDOW.contains(dt.datetime(2023, 8, 1, 0, tzinfo=dt.UTC))
    with pytest.raises(ConfigError, match="acquire.dates.july"):
        parse_window("july", "2023-07-31..2023-07-01")


def test_candidates_fit_the_window_the_cloud_limit_and_the_area():
    items = [
        item("early", "2023-07-02T10:00:00+00:00", 3.0),
        item("cloudy", "2023-07-16T10:00:00+00:00", 50.0),
        item("outside", "2023-08-02T10:00:00+00:00", 0.0),
        item("unknown-cloud", "2023-07-16T10:00:00+00:00", None),
        item("elsewhere", "2023-07-16T10:00:00+00:00", 0.0, area=(-40.0, 61.15, -39.9, 61.25)),
        item("partial", "2023-07-16T10:00:00+00:00", 0.0, area=(-45.4, 61.15, -45.3, 61.25)),
    ]
    assert [c.item.id for c in candidates(items, WINDOW, 20, AREA)] == ["early", "partial"]
    assert candidates(items, WINDOW, -1, AREA) == []


def test_choose_the_day_whose_items_together_see_the_most():
    """Pixels seen (valid by SCL) on an area of 10 x 10 pixels, per item."""
    seen = {}

    def choice(item_id: str, when: str, cloud: float, rows: slice, cols: slice) -> Choice:
        valid = np.zeros((10, 10), bool)
        valid[rows, cols] = True
        seen[item_id] = valid
        return Choice(item(item_id, when, cloud), cloud, dt.datetime.fromisoformat(when))

    middle = WINDOW.middle
    clearest = choice("clearest", "2023-07-05T10:00:00+00:00", 1.0, slice(0, 7), slice(None))
    west = choice("west", "2023-07-20T10:00:00+00:00", 9.0, slice(None), slice(0, 6))
    east = choice("east", "2023-07-20T10:01:00+00:00", 12.0, slice(None), slice(4, 10))
    again = choice("east-again", "2023-07-20T10:02:00+00:00", 12.0, slice(None), slice(5, 10))

    def pick(*choices: Choice) -> list[str]:
        return [c.item.id for c in choose_items(choices, lambda c: seen[c.item.id], middle)]

    # Two tiles of one day see all 100 pixels; the least cloudy item alone sees 70.
    # An item that adds no pixel (a duplicate of a tile) is left out.
    assert pick(clearest, west, east, again) == ["west", "east"]
    # Equal coverage: the less cloudy set, then the day nearer the window's middle.
    alone = choice("alone", "2023-07-25T10:00:00+00:00", 9.0, slice(None), slice(0, 6))
    assert pick(alone, west) == ["west"]
    twin = choice("twin", "2023-07-25T10:00:00+00:00", 5.0, slice(None), slice(0, 6))
    assert pick(twin, west) == ["twin"]
    assert pick() == []


def test_processing_baseline_and_offset():
    new = item(
        "S2B_23VLG_20230718_0_L2A",
        "2023-07-18T10:00:00+00:00",
        1,
        **{"s2:processing_baseline": "05.09"},
    )
    old = item(
        "x",
        "2021-07-18T10:00:00+00:00",
        1,
        **{"s2:product_uri": "S2A_MSIL2A_20210718T1_N0301_R1_T23VLG_2.SAFE"},
    )
    applied = item(
        "y",
        "2023-07-18T10:00:00+00:00",
        1,
        **{"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True},
    )
    unknown = item("z", "2023-07-18T10:00:00+00:00", 1)
    assert processing_baseline(old) == "03.01" and processing_baseline(unknown) is None
    assert boa_offset(new, "auto") == -1000.0
    assert boa_offset(old, "auto") == 0.0
    assert boa_offset(applied, "auto") == 0.0
    assert boa_offset(unknown, -1000) == -1000.0
    with pytest.raises(InputDataError, match="acquire.boa_offset"):
        boa_offset(unknown, "auto")


def test_grids_snap_outward_in_the_utm_zone():
    assert utm_crs(-45.4, 61.2) == CRS.from_epsg(32623)  # Narsarsuaq
    assert utm_crs(86.9, 27.9) == CRS.from_epsg(32645)  # Everest
    grid = snapped_grid((1003.0, 2001.0, 1096.0, 2049.5), CRS.from_epsg(32623), 10)
    assert grid.bounds == (1000.0, 2000.0, 1100.0, 2050.0) and (grid.width, grid.height) == (10, 5)
    padded = area_grid(AreaSpec(AREA, None, 500.0), 10)
    plain = area_grid(AreaSpec(AREA, None, 0.0), 10)
    assert padded.width == plain.width + 100 and padded.crs == CRS.from_epsg(32623)
    west, south, east, north = plain.lonlat_bbox()
    assert west <= AREA[0] and south <= AREA[1] and east >= AREA[2] and north >= AREA[3]


def test_read_on_grid_copies_an_aligned_window_and_warps_otherwise(tmp_path, geotiff):
    dn = np.arange(1, 41 * 37 + 1, dtype=np.uint16).reshape(37, 41)
    crs = CRS.from_epsg(32645)
    origin = Affine(10, 0, 5000, 0, -10, 9000)
    path = geotiff(tmp_path / "b.tif", dn, crs=crs, transform=origin, nodata=0)
    # Partly outside the source: the outside is 0 (no data), the inside copied as is.
    aligned = read_on_grid(str(path), Grid(crs, Affine(10, 0, 4980, 0, -10, 8970), 6, 5))
    np.testing.assert_array_equal(aligned[:, 2:], dn[3:8, 0:4])
    assert (aligned[:, :2] == 0).all()
    # Shifted by half a pixel: warped with nearest neighbour, values stay source DNs.
    shifted = read_on_grid(str(path), Grid(crs, Affine(10, 0, 5105, 0, -10, 8895), 8, 8))
    assert shifted.shape == (8, 8) and set(np.unique(shifted)) <= set(np.unique(dn))


def study_like_config(tmp: Path, **scene: object) -> dict:
    july = {"acquired": "2023-07-16", "file": str(tmp / "july.tif"),
            "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4}, **scene}  # fmt: skip
    return validate_config(
        {
            "data": {
                "scenes": {"july": july},
                "outlines": {"file": str(tmp / "outlines.gpkg")},
                "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
            },
            "acquire": {
                "enabled": True,
                "aoi": {"bbox": [86.85, 27.95, 86.95, 28.02], "buffer_m": 100},
                "dates": {"july": "2023-07-01..2023-07-31"},
                "outlines": {
                    "source": "file",
                    "file": str(DATA / "15_rgi60_glacier_outlines.gpkg"),
                },
            },
        }
    )


def test_config_checks_name_the_keys(tmp_path):
    config = study_like_config(tmp_path)
    assert acquired_files(config) == {str(tmp_path / "july.tif"), str(tmp_path / "outlines.gpkg")}
    with pytest.raises(ConfigError, match="data.scenes.july.bands"):
        scene_targets(
            study_like_config(tmp_path, bands={"blue": 3, "green": 2, "red": 1, "nir": 4})
        )
    with pytest.raises(ConfigError, match="data.scenes.july.product"):
        scene_targets(study_like_config(tmp_path, product="sentinel2_l2a"))
    broken = study_like_config(tmp_path)
    del broken["acquire"]["aoi"]
    with pytest.raises(ConfigError, match="acquire"):
        validate_config(broken)
    both = study_like_config(tmp_path)
    both["acquire"]["aoi"]["glaciers"] = ["G086900E27980N"]
    with pytest.raises(ConfigError, match="acquire.aoi"):
        validate_config(both)
    # A downloaded date with validity.scl: the rule writes the merged SCL there too,
    # and choosing and merging the items masks the classes the date masks.
    masked = study_like_config(tmp_path, validity={"scl": str(tmp_path / "july_scl.tif"),
                                                   "invalid": [8, 9]})  # fmt: skip
    assert scl_targets(masked) == {"july": str(tmp_path / "july_scl.tif")}
    assert str(tmp_path / "july_scl.tif") in acquired_files(masked)
    assert scl_invalid_classes(masked, "july") == [8, 9]
    assert scl_invalid_classes(config, "july") is None and scl_targets(config) == {}
    assert config["acquire"]["assets"]["scl"] == "scl"


def run_command(argv: list[str]) -> None:
    """The acquire sub-commands as the glaciermap CLI parses them (without importing torch)."""
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_command_cuts_a_local_rgi_file_to_the_area(tmp_path):
    config = study_like_config(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run_command(["acquire-outlines", "--config", str(path)])
    outlines = gpd.read_file(tmp_path / "outlines.gpkg", layer="outlines")
    source = gpd.read_file(DATA / "15_rgi60_glacier_outlines.gpkg")
    assert list(outlines.columns) == list(source.columns)  # RGI attributes kept
    assert 0 < len(outlines) < len(source)
    west, south, east, north = outlines.total_bounds
    assert west >= 86.84 and east <= 86.96 and south >= 27.94 and north <= 28.03
    # A glacier id absent from the file is a config error naming the key.
    config["acquire"]["aoi"] = {"glaciers": ["RGI60-15.99999"]}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="acquire.aoi.glaciers"):
        run_command(["acquire-outlines", "--config", str(path)])


def test_scene_file_is_tiled_reflectance_with_tags(tmp_path):
    dn = np.full((300, 260), 1500, dtype=np.uint16)
    dn[:10] = 0
    reflectance = to_reflectance(dn, -1000.0)
    assert np.isnan(reflectance[:10]).all() and (reflectance[10:] == np.float32(0.05)).all()
    grid = Grid(CRS.from_epsg(32623), Affine(10, 0, 500000, 0, -10, 6790000), 260, 300)
    band_tags = [{"sentinel2": BAND_IDS[band]} for band in ("blue", "green", "red", "nir")]
    output = tmp_path / "scene.tif"
    write_scene(np.stack([reflectance] * 4), grid, output, {"stac_item_id": "X"}, band_tags)
    with rasterio.open(output) as scene:
        assert scene.block_shapes[0] == (256, 256) and scene.transform == grid.transform
        assert scene.tags()["stac_item_id"] == "X" and scene.tags(4)["sentinel2"] == "B08"
        np.testing.assert_array_equal(scene.read(2), reflectance)
    # The preparation stage reads it as the config entry of a downloaded scene says.
    entry = {"acquired": "2023-07-16", "file": str(output), "product": "generic",
             "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4}}  # fmt: skip
    values, _ = read_scene(entry, "july")
    np.testing.assert_array_equal(values, np.stack([reflectance] * 4))
