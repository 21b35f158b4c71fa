"""Cloud, shadow and defect masks (SCL or a mask of your own) and mosaics of
several products per date, on Sentinel-2 L2A-shaped files the tests write.

Expected scenes are built here from the DNs and classes the tests wrote (20 m
classes repeated onto the 2 x 2 pixels of the 10 m grid), independently of
the package's merge code, and compared pixel for pixel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from sentinel2_products import (
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_NO_DATA,
    SCL_NOT_VEGETATED,
    SCL_SHADOW,
    SCL_SNOW,
    reflectance,
    upsample,
    write_product,
)

from glaciermap.config import validate_config
from glaciermap.data.normalization import ArrayBands, scene_range
from glaciermap.data.prepare import cut_tiles, prepare_mask, prepare_scene
from glaciermap.errors import ConfigError, GlacierMapError, InputDataError
from glaciermap.evaluation.baseline import FORMAT, predict_baseline
from glaciermap.io.grid import Grid
from glaciermap.io.validity import MASKED, NO_DATA, VALID
from glaciermap.labels import NODATA

UTM45 = "EPSG:32645"
X0, Y0 = 500000.0, 3100000.0
ORIGIN = Affine(10.0, 0, X0, 0, -10.0, Y0)
SIDE = 40
DEFAULT_INVALID = [0, 1, 3, 8, 9, 10]


def dns(seed: int, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).integers(1500, 6000, (4, side, side)).astype(np.uint16)


def glacier_scl() -> np.ndarray:
    """20 m classes: ice on the left half, rock on the right, a cloud over the ice,
    a shadow over the rock, cirrus, a topographic shadow (valid) and a no-data row."""
    scl = np.full((SIDE // 2, SIDE // 2), SCL_NOT_VEGETATED, np.uint8)
    scl[:, : SIDE // 4] = SCL_SNOW
    scl[0] = SCL_NO_DATA
    scl[3:6, 2:6] = SCL_CLOUD_HIGH
    scl[6, 2:6] = SCL_CLOUD_MEDIUM
    scl[10:13, 13:17] = SCL_SHADOW
    scl[15, 15] = SCL_CIRRUS
    scl[17, 2] = 2  # topographic shadow: not masked by default
    return scl


def data_config(scenes: dict, **extra) -> dict:
    data = {
        "scenes": scenes,
        "outlines": {"file": "outlines.gpkg"},
        "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
        **extra,
    }
    return validate_config({"data": data})["data"]


def prepare(tmp_path: Path, data: dict, date: str = "july"):
    scene, validity = tmp_path / "out/scenes/x.tif", tmp_path / "out/validity/x.tif"
    prepare_scene(data, date, scene, validity, tmp_path)
    with rasterio.open(scene) as s, rasterio.open(validity) as v:
        return s.read(), v.read(1), s.tags(), Grid.of(s), Grid.of(v)


# --------------------------------------------------------------------------- one product


def test_scl_clouds_and_shadows_become_nodata_pixel_for_pixel(tmp_path):
    dn = dns(0)
    dn[:, :2] = 0  # the no-data row of the SCL: no data in the bands either
    scl = glacier_scl()
    product = write_product(tmp_path, "45RVL", "20230715", dn, scl, ORIGIN)
    data = data_config({"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}})
    scene, codes, tags, grid, validity_grid = prepare(tmp_path, data)

    classes = upsample(scl)
    invalid = np.isin(classes, DEFAULT_INVALID)
    expected = np.where(invalid, np.nan, reflectance(dn))
    np.testing.assert_array_equal(scene, expected)
    assert invalid[8:14, 4:12].all() and invalid[20:26, 26:34].all()  # cloud, shadow
    assert np.isfinite(scene[:, 34, 4]).all()  # the topographic shadow stays
    expected_codes = np.where(dn[0] == 0, NO_DATA, np.where(invalid, MASKED, VALID))
    np.testing.assert_array_equal(codes, expected_codes)
    assert validity_grid == grid and grid.transform == ORIGIN and grid.crs == UTM45
    assert tags["source_items"] == Path(product["bands"]["blue"]).parts[0]
    assert float(tags["valid_fraction"]) == pytest.approx((codes == VALID).mean())


def test_cloud_pixels_get_no_label_in_masks_tiles_and_baseline(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    dn = dns(1)
    scl = glacier_scl()
    product = write_product(tmp_path, "45RVL", "20230715", dn, scl, ORIGIN)
    ice = box(X0, Y0 - SIDE * 10, X0 + SIDE * 5, Y0)  # the left half, where the cloud is
    frame = gpd.GeoDataFrame({"RGIId": ["RGI60-15.00001"]}, geometry=[ice], crs=UTM45)
    frame.to_file(tmp_path / "outlines.gpkg")
    data = data_config({"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}})
    scene_path, validity = tmp_path / "scene.tif", tmp_path / "validity.tif"
    prepare_scene(data, "july", scene_path, validity, tmp_path)
    prepare_mask(data, "july", scene_path, tmp_path / "mask.tif", tmp_path)
    invalid = np.isin(upsample(scl), DEFAULT_INVALID)

    with rasterio.open(tmp_path / "mask.tif") as mask_file:
        mask = mask_file.read(1)
        assert mask_file.nodata == NODATA
    ice_pixels = np.zeros((SIDE, SIDE), bool)
    ice_pixels[:, : SIDE // 2] = True
    np.testing.assert_array_equal(mask, np.where(invalid, NODATA, ice_pixels))

    with rasterio.open(scene_path) as source:
        scene, grid = source.read(), Grid.of(source)
    windows = np.array([[0, 0, 32, 32], [8, 8, 32, 32]])
    ranges = scene_range(ArrayBands(scene))  # robust ranges of the seen pixels only
    assert np.isfinite(ranges).all()
    tiles, valid = cut_tiles(scene, mask, windows, grid, 0.5, ranges)
    for i, (row, col, height, width) in enumerate(tiles.windows):
        window = invalid[row : row + height, col : col + width]
        np.testing.assert_array_equal(tiles.masks[i] == NODATA, window)
        np.testing.assert_array_equal(valid[i], ~window)

    rules = tmp_path / "rules.json"
    rule = {"feature": "blue", "direction": ">=", "threshold": 0.0}
    rules.write_text(json.dumps({"format": FORMAT, "rules": [rule]}))
    predict_baseline(rules, scene_path, tmp_path / "baseline.tif")
    with rasterio.open(tmp_path / "baseline.tif") as predicted:
        np.testing.assert_array_equal(predicted.read(1), np.where(invalid, NODATA, 1))


def test_configured_classes_and_a_mask_of_ones_own(tmp_path):
    dn = dns(2)
    scl = glacier_scl()
    product = write_product(tmp_path, "45RVL", "20230715", dn, scl, ORIGIN)
    product["validity"]["invalid"] = [SCL_CLOUD_HIGH]  # only the dense cloud
    data = data_config({"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}})
    scene, codes, *_ = prepare(tmp_path, data)
    invalid = upsample(scl) == SCL_CLOUD_HIGH
    np.testing.assert_array_equal(np.isnan(scene).all(axis=0), invalid)

    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[5:9, 30:37] = 1  # e.g. s2cloudless: 1 = cloud
    mask[20:22, 3:5] = 255
    with rasterio.open(
        tmp_path / "clouds.tif", "w", driver="GTiff", width=SIDE, height=SIDE, count=1,
        dtype="uint8", crs=UTM45, transform=ORIGIN,
    ) as out:  # fmt: skip
        out.write(mask, 1)
    product["validity"] = {"mask": "clouds.tif"}
    data = data_config({"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}})
    scene, codes, *_ = prepare(tmp_path, data)
    np.testing.assert_array_equal(np.isnan(scene).all(axis=0), mask != 0)
    np.testing.assert_array_equal(codes == MASKED, mask != 0)

    product["validity"] = {"mask": {"file": "clouds.tif", "band": 1}, "invalid": [255]}
    data = data_config({"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}})
    scene, *_ = prepare(tmp_path, data)
    np.testing.assert_array_equal(np.isnan(scene).all(axis=0), mask == 255)


# --------------------------------------------------------------------------- mosaics


def two_tiles(tmp_path: Path, crs_b: str = UTM45, origin_b: Affine | None = None):
    """Tile A and tile B (20 px to the east, overlapping A's right half) of one day.

    A: a cloud over the overlap (A rows 10-19, cols 24-31) and one at its
    north-east corner; B: a shadow over the overlap (B rows 30-35, cols 0-7)
    and a cloud at the same north-east spot, so that neither sees it.
    """
    dn_a, dn_b = dns(3), dns(4)
    scl_a = np.full((SIDE // 2, SIDE // 2), SCL_SNOW, np.uint8)
    scl_b = scl_a.copy()
    scl_a[5:10, 12:16] = SCL_CLOUD_HIGH
    scl_a[0:2, 18:20] = SCL_CLOUD_HIGH
    scl_b[15:18, 0:4] = SCL_SHADOW
    scl_b[0:2, 8:10] = SCL_CLOUD_MEDIUM
    origin_b = origin_b or Affine(10.0, 0, X0 + 200, 0, -10.0, Y0)
    a = write_product(tmp_path, "45RVL", "20230715", dn_a, scl_a, ORIGIN)
    b = write_product(tmp_path, "45RWL", "20230715", dn_b, scl_b, origin_b, crs=crs_b)
    return (a, dn_a, scl_a), (b, dn_b, scl_b)


def test_mosaic_takes_the_valid_pixel_then_the_clearer_tile(tmp_path):
    (a, dn_a, scl_a), (b, dn_b, scl_b) = two_tiles(tmp_path)
    scene_entry = {"acquired": "2023-07-15", "product": "sentinel2_l2a", "inputs": [a, b]}
    scene, codes, tags, grid, _ = prepare(tmp_path, data_config({"july": scene_entry}))

    assert grid.transform == ORIGIN and grid.shape == (SIDE, SIDE + 20)  # covers both
    # Independently: each tile's reflectance and validity on the mosaic grid.
    on_grid = np.full((2, 4, SIDE, SIDE + 20), np.nan, np.float32)
    valid = np.zeros((2, SIDE, SIDE + 20), bool)
    for i, (dn, scl, col) in enumerate(((dn_a, scl_a, 0), (dn_b, scl_b, 20))):
        on_grid[i][:, :, col : col + SIDE] = reflectance(dn)
        valid[i][:, col : col + SIDE] = ~np.isin(upsample(scl), DEFAULT_INVALID)
    # B is the clearer tile (4 % cloudy against 6 %): its valid pixels win.
    expected = np.where(valid[1], on_grid[1], np.where(valid[0], on_grid[0], np.nan))
    np.testing.assert_array_equal(scene, expected)
    np.testing.assert_array_equal(scene[:, 10:20, 24:32], on_grid[1][:, 10:20, 24:32])  # A cloudy
    np.testing.assert_array_equal(scene[:, 30:36, 20:28], on_grid[0][:, 30:36, 20:28])  # B shadow
    np.testing.assert_array_equal(scene[:, 20:30, 32:40], on_grid[1][:, 20:30, 32:40])  # both
    assert np.isnan(scene[:, 0:4, 36:40]).all()  # cloudy in both
    np.testing.assert_array_equal(codes, np.where(valid.any(axis=0), VALID, MASKED))

    names = [Path(p["bands"]["blue"]).parts[0] for p in (a, b)]
    assert tags["source_items"].split(",") == [names[1], names[0]]  # in rank order
    reports = json.loads(tags["inputs"])
    assert [r["input"] for r in reports] == [
        "data.scenes.july.inputs.1",
        "data.scenes.july.inputs.0",
    ]
    assert reports[1]["cloudy_fraction"] == pytest.approx(96 / 1600)


def test_mosaic_tile_of_another_utm_zone_is_reprojected(tmp_path):
    west, south, east, north = transform_bounds(
        UTM45, "EPSG:32646", X0 + 200, Y0 - 400, X0 + 600, Y0
    )
    origin_b = Affine(10.0, 0, round(west / 10) * 10, 0, -10.0, round(north / 10) * 10)
    (a, dn_a, _), (b, dn_b, scl_b) = two_tiles(tmp_path, "EPSG:32646", origin_b)
    # Constant B values: a bilinear reprojection keeps them exactly inside the tile.
    for band_file in b["bands"].values():
        rewrite(tmp_path / band_file, lambda dn: np.full_like(dn, 3000))
    scene_entry = {"acquired": "2023-07-15", "product": "sentinel2_l2a", "inputs": [a, b]}
    scene, codes, _, grid, _ = prepare(tmp_path, data_config({"july": scene_entry}))

    assert grid.crs == UTM45 and grid.transform.c == X0 and grid.width > SIDE
    east_of_a = scene[:, 12:28, SIDE + 2 : SIDE + 10]  # only B reaches there, away from its edges
    np.testing.assert_allclose(east_of_a, 0.2, rtol=1e-6)
    # B's north-east cloud (20 m rows 0-1, cols 8-9) lands where its footprint says.
    cloud_x, cloud_y = origin_b @ (19, 2)  # 10 m pixel (row 2, col 19) of B: inside it
    (x,), (y,) = rasterio.warp.transform("EPSG:32646", UTM45, [cloud_x], [cloud_y])
    col, row = (int(np.floor(v)) for v in ~grid.transform @ (x, y))
    assert np.isnan(scene[:, row, col]).all()
    assert codes[row, col] == MASKED  # A is cloudy there too


# --------------------------------------------------------------------------- bad input


def rewrite(path: Path, change) -> None:
    """Rewrite a raster (JPEG 2000 cannot be updated in place) with ``change(array)``."""
    with rasterio.open(path) as source:
        keys = ("driver", "dtype", "count", "crs", "transform")
        profile, array = {key: source.profile[key] for key in keys}, source.read(1)
    array = change(array)
    profile.update(height=array.shape[0], width=array.shape[1], QUALITY=100, REVERSIBLE="YES")
    with rasterio.open(path, "w", **profile) as out:
        out.write(array, 1)


def _scl_short(tmp_path: Path, product: dict) -> dict:
    rewrite(tmp_path / product["validity"]["scl"], lambda classes: classes[: SIDE // 4].copy())
    return {"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}}


def _set(rows: slice, cols: slice, value: int):
    def change(classes: np.ndarray) -> np.ndarray:
        classes[rows, cols] = value
        return classes

    return change


def _scl_bad_class(tmp_path: Path, product: dict) -> dict:
    rewrite(tmp_path / product["validity"]["scl"], _set(slice(4, 5), slice(4, 5), 15))
    return {"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}}


def _mostly_cloudy(tmp_path: Path, product: dict) -> dict:
    rewrite(tmp_path / product["validity"]["scl"], _set(slice(0, 14), slice(None), SCL_CLOUD_HIGH))
    entry = {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}
    return {"july": entry, "min_valid_fraction": 0.5}


def _other_band_set(tmp_path: Path, product: dict) -> dict:
    other = json.loads(json.dumps(product))
    nir = tmp_path / other["bands"]["nir"]
    b8a = nir.with_name(nir.name.replace("_B08_10m", "_B8A_10m"))
    b8a.write_bytes(nir.read_bytes())
    other["bands"]["nir"] = str(b8a.relative_to(tmp_path))
    return {
        "july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", "inputs": [product, other]}
    }


def _validity_in_one_input_only(tmp_path: Path, product: dict) -> dict:
    other = {"bands": product["bands"]}
    return {
        "july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", "inputs": [product, other]}
    }


def _other_product(tmp_path: Path, product: dict) -> dict:
    other = {**product, "product": "generic"}
    return {
        "july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", "inputs": [product, other]}
    }


def _validity_beside_inputs(tmp_path: Path, product: dict) -> dict:
    entry = {"acquired": "2023-07-15", "inputs": [{"bands": product["bands"]}]}
    return {"july": {**entry, "product": "sentinel2_l2a", "validity": product["validity"]}}


def _scl_class_not_in_0_11(tmp_path: Path, product: dict) -> dict:
    product["validity"]["invalid"] = [9, 12]
    return {"july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **product}}


@pytest.mark.parametrize(
    ("breaks", "error", "message"),
    [
        (_scl_short, InputDataError,
         r"SCL_20m\.jp2 \(config key 'data\.scenes\.july\.validity\.scl'\) does not cover"),
        (_scl_bad_class, InputDataError,
         r"SCL_20m\.jp2 .*holds values 15 outside the Scene Classification classes 0-11"),
        (_mostly_cloudy, InputDataError,
         r"'data\.scenes\.july'\): 29\.8% of the grid .* is valid \(70\.2% masked"
         r".*'data\.min_valid_fraction' \(50\.0%\)"),
        (_other_band_set, ConfigError,
         r"'data\.scenes\.july\.inputs\.1'.*one band set.*B8A as nir where "
         r"'data\.scenes\.july\.inputs\.0'.* has B08"),
        (_validity_in_one_input_only, ConfigError,
         r"'data\.scenes\.july\.inputs\.1'.*validity source none where.*has scl"),
        (_other_product, ConfigError,
         r"'data\.scenes\.july\.inputs\.1'.*product generic where.*has sentinel2_l2a"),
        (_validity_beside_inputs, ConfigError,
         r"'data\.scenes\.july\.validity': with 'data\.scenes\.july\.inputs' every input"),
        (_scl_class_not_in_0_11, ConfigError,
         r"'data\.scenes\.july\.validity\.invalid': \[12\] are not Scene Classification"),
    ],
    ids=["scl-not-covering", "scl-class-15", "below-min-valid", "band-sets-differ",
         "validity-in-one-input", "products-differ", "validity-beside-inputs", "invalid-class-12"],
)  # fmt: skip
def test_bad_validity_and_mosaic_inputs_fail_clearly_without_output(
    tmp_path, breaks, error, message
):
    dn = dns(5)
    product = write_product(tmp_path, "45RVL", "20230715", dn, glacier_scl(), ORIGIN)
    extra = breaks(tmp_path, product)
    scenes = {"july": extra.pop("july")}
    with pytest.raises(error, match=message) as raised:
        prepare(tmp_path, data_config(scenes, **extra))
    assert isinstance(raised.value, GlacierMapError)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.tif"))


def test_schema_takes_one_input_or_a_list_and_names_the_key():
    bands = {"blue": "b.tif", "green": "g.tif", "red": "r.tif", "nir": "n.tif"}
    config = {
        "data": data_config({"july": {"acquired": "2023-07-15", "inputs": [{"bands": bands}]}})
    }
    assert config["data"]["min_valid_fraction"] == 0.1
    assert config["data"]["scenes"]["july"]["inputs"][0] == {
        "bands": bands
    }  # inherits, no defaults
    day = {"acquired": "2023-07-15"}
    for entry, key in (
        ({**day, "bands": bands, "inputs": [{"bands": bands}]}, "data.scenes.july"),
        ({**day, "bands": bands, "validity": {"scl": "s.jp2", "mask": "m.tif"}},
         "data.scenes.july.validity"),
        ({**day, "inputs": [{"bands": bands, "acquired": "2023-07-15"}]},
         "data.scenes.july.inputs.0"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            data_config({"july": entry})
