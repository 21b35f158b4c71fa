"""Reading scenes: band mappings, Sentinel-2 L2A offset, grids and bad rasters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap.data.prepare import prepare_scene
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io import sentinel2
from glaciermap.io.scenes import check_scene_sources, read_prepared_scene, read_scene

CRS = "EPSG:32633"
ORIGIN = from_origin(500000, 7000000, 10, 10)
GRID = {"crs": CRS, "transform": ORIGIN}  # keywords of the geotiff fixture


def test_multiband_file_with_band_mapping_scale_and_nodata(tmp_path, geotiff):
    dn = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    dn[0, 0, 0] = 255
    nir = np.full((8, 8), 100, np.uint8)
    geotiff(tmp_path / "rgb.tif", dn, **GRID, nodata=255)
    geotiff(tmp_path / "nir.tif", nir, **GRID)
    scene = {
        "file": "rgb.tif",
        "bands": {"blue": 3, "green": 2, "red": 1, "nir": {"file": "nir.tif", "band": 1}},
        "scale": 0.5,
        "offset": 2.0,
    }
    array, grid = read_scene(scene, "d", tmp_path)
    assert array.dtype == np.float32 and array.shape == (4, 8, 8)
    np.testing.assert_allclose(array[0, 1:], (dn[2, 1:] + 2.0) * 0.5)
    np.testing.assert_allclose(array[3, 1:], (nir[1:] + 2.0) * 0.5)
    # Band 1 of the RGB file is red: its nodata pixel lacks a band, so the scene
    # has no valid pixel there, in any band; the rest of the row is valid.
    assert np.isnan(array[:, 0, 0]).all() and np.isfinite(array[:, 0, 1:]).all()
    assert grid.transform == ORIGIN


@pytest.mark.parametrize(
    ("baseline_in", "offset"),
    [("N0509", -1000.0), ("N0400", -1000.0), ("N0301", 0.0)],
)
def test_sentinel2_l2a_offset_from_safe_name(tmp_path, geotiff, baseline_in, offset):
    safe = tmp_path / f"S2A_MSIL2A_20230715T141741_{baseline_in}_R010_T23VNH_20230715T200000.SAFE"
    dn = np.full((8, 8), 3000, np.uint16)
    dn[1, 1] = 0
    bands = {}
    for name, code in zip(
        ("blue", "green", "red", "nir"), ("B02", "B03", "B04", "B08"), strict=True
    ):
        path = geotiff(safe / f"T23VNH_20230715T141741_{code}_10m.tif", dn, **GRID)
        bands[name] = str(path.relative_to(tmp_path))
    scene = {"product": "sentinel2_l2a", "bands": bands}
    array, _ = read_scene(scene, "july", tmp_path)
    assert array[0, 0, 0] == pytest.approx((3000 + offset) / 10000)
    assert np.isnan(array[:, 1, 1]).all()  # DN 0 is nodata in every band


def test_sentinel2_l2a_jp2_band_files(tmp_path):
    granule = tmp_path / "S2B_MSIL2A_20230801T1_N0509_R1_T23VNH_2.SAFE" / "GRANULE" / "IMG_DATA"
    granule.mkdir(parents=True)
    bands = {}
    for i, (name, code) in enumerate(
        zip(("blue", "green", "red", "nir"), ("B02", "B03", "B04", "B08"), strict=True)
    ):
        path = granule / f"T23VNH_20230801T1_{code}_10m.jp2"
        profile = {"driver": "JP2OpenJPEG", "width": 16, "height": 16, "count": 1}
        profile.update(dtype="uint16", crs=CRS, transform=ORIGIN, QUALITY=100, REVERSIBLE="YES")
        with rasterio.open(path, "w", **profile) as out:
            out.write(np.full((1, 16, 16), 2000 + 100 * i, np.uint16))
        bands[name] = str(path.relative_to(tmp_path))
    array, grid = read_scene({"product": "sentinel2_l2a", "bands": bands}, "aug", tmp_path)
    np.testing.assert_allclose(array[:, 3, 3], [0.1, 0.11, 0.12, 0.13], rtol=1e-6)
    assert grid.transform == ORIGIN


def test_sentinel2_baseline_from_config_and_missing(tmp_path, geotiff):
    dn = np.full((4, 4), 1500, np.uint16)
    bands = {b: geotiff(tmp_path / f"x_{b}_10m.tif", dn, **GRID).name for b in ("B02", "B03")}
    mapping = {
        "blue": bands["B02"],
        "green": bands["B03"],
        "red": bands["B03"],
        "nir": bands["B02"],
    }
    scene = {"product": "sentinel2_l2a", "bands": mapping, "processing_baseline": "04.00"}
    array, _ = read_scene(scene, "aug", tmp_path)
    assert array[0, 0, 0] == pytest.approx(0.05)
    del scene["processing_baseline"]
    with pytest.raises(ConfigError, match=r"data\.scenes\.aug\.processing_baseline"):
        read_scene(scene, "aug", tmp_path)


def test_baseline_parsing():
    assert sentinel2.baseline_from_name("a/S2B_MSIL2A_20230801T1_N0509_R1_T2_3.SAFE/G/B02.jp2") == (
        "05.09"
    )
    assert sentinel2.baseline_from_name("plain/T23VNH_B02_10m.jp2") is None
    assert sentinel2.reflectance_offset("03.99") == 0.0
    assert sentinel2.reflectance_offset("04.00") == -1000.0


def _rgb_scene(tmp_path: Path, geotiff, **extra) -> dict:
    geotiff(tmp_path / "rgb.tif", np.ones((3, 8, 8), np.uint8), **GRID)
    return {"file": "rgb.tif", "bands": {"blue": 1, "green": 2, "red": 3, "nir": 1}, **extra}


def test_missing_band_names_file_and_key(tmp_path, geotiff):
    scene = _rgb_scene(tmp_path, geotiff)
    scene["bands"]["nir"] = 4
    with pytest.raises(InputDataError, match=r"rgb\.tif.*data\.scenes\.d\.bands\.nir.*band 4"):
        check_scene_sources(scene, "d", tmp_path)
    with pytest.raises(InputDataError, match="band 4 is missing"):
        read_scene(scene, "d", tmp_path)


def test_bare_path_to_multiband_file_is_a_wrong_band_count(tmp_path, geotiff):
    scene = _rgb_scene(tmp_path, geotiff)
    scene["bands"]["nir"] = "rgb.tif"
    with pytest.raises(InputDataError, match=r"rgb\.tif.*bands\.nir.*has 3 bands"):
        check_scene_sources(scene, "d", tmp_path)


def test_unreadable_and_truncated_rasters(tmp_path, geotiff):
    geotiff(tmp_path / "rgb.tif", np.ones((3, 64, 64), np.uint8), **GRID)
    scene = {"file": "rgb.tif", "bands": {"blue": 1, "green": 2, "red": 3, "nir": 1}}
    good = (tmp_path / "rgb.tif").read_bytes()
    (tmp_path / "rgb.tif").write_bytes(b"this is not a GeoTIFF")
    with pytest.raises(InputDataError, match=r"cannot read raster .*rgb\.tif"):
        check_scene_sources(scene, "d", tmp_path)
    (tmp_path / "rgb.tif").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputDataError, match=r"rgb\.tif.*truncated"):
        read_scene(scene, "d", tmp_path)


def _two_dates(tmp_path: Path, geotiff, on_grid_mismatch: str) -> dict:
    geotiff(tmp_path / "a.tif", np.full((3, 16, 16), 10, np.uint8), **GRID)
    shifted = from_origin(500000 + 25, 7000000 - 25, 10, 10)  # not on the reference grid
    geotiff(tmp_path / "b.tif", np.full((3, 16, 16), 20, np.uint8), crs=CRS, transform=shifted)
    bands = {"blue": 1, "green": 2, "red": 3, "nir": 1}
    return {
        "scenes": {
            "a": {"acquired": "2023-07-01", "file": "a.tif", "bands": bands},
            "b": {"acquired": "2023-08-01", "file": "b.tif", "bands": bands},
        },
        "reference_date": None,
        "on_grid_mismatch": on_grid_mismatch,
    }


def test_second_date_on_another_grid_is_reprojected(tmp_path, geotiff):
    data = _two_dates(tmp_path, geotiff, "reproject")
    out = tmp_path / "results" / "b.tif"
    prepare_scene(data, "b", out, tmp_path / "results" / "b_validity.tif", tmp_path)
    array, grid = read_prepared_scene(out)
    assert grid.transform == ORIGIN and grid.shape == (16, 16)
    # The shifted scene covers the lower right of the reference grid only.
    assert np.isnan(array[:, 0, 0]).all()
    assert array[0, 8, 8] == pytest.approx(20.0)
    with rasterio.open(out) as dataset:
        assert dataset.descriptions == ("blue", "green", "red", "nir")
        assert dataset.dtypes[0] == "float32" and np.isnan(dataset.nodata)


def test_second_date_on_another_grid_is_refused_without_output(tmp_path, geotiff):
    data = _two_dates(tmp_path, geotiff, "error")
    out = tmp_path / "results" / "b.tif"
    with pytest.raises(InputDataError, match=r"b\.tif.*another grid.*on_grid_mismatch"):
        prepare_scene(data, "b", out, tmp_path / "results" / "b_validity.tif", tmp_path)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
