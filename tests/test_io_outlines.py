"""GLIMS and RGI outlines: internal rock, nearest analysis, reprojection, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box

from glaciermap.data.masks import rasterize_mask, require_overlap
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.io.grid import Grid
from glaciermap.io.outlines import detect_format, glacier_ids, read_outlines

UTM = CRS.from_epsg(32633)
GRID = Grid(UTM, from_origin(500000, 7000000, 10, 10), 20, 20)
X0, Y0 = 500000, 7000000
GLACIER = box(X0 + 20, Y0 - 180, X0 + 180, Y0 - 20)  # 16 x 16 pixels
ROCK = box(X0 + 80, Y0 - 120, X0 + 120, Y0 - 80)  # 4 x 4 pixels inside it
SMALL = box(X0 + 20, Y0 - 100, X0 + 100, Y0 - 20)  # 8 x 8 pixels, a later analysis


def glims_file(path: Path, rows: list[dict], crs=UTM) -> Path:
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=UTM).to_crs(crs)
    frame.to_file(path)
    return path


def row(geometry, line_type="glac_bound", glac_id="G1", anlys_id=1, src_date="2000-08-01"):
    return {
        "line_type": line_type,
        "glac_id": glac_id,
        "anlys_id": anlys_id,
        "src_date": src_date,
        "anlys_time": "2005-01-01T00:00:00",
        "geometry": geometry,
    }


def mask_of(outlines: gpd.GeoDataFrame) -> np.ndarray:
    return rasterize_mask(outlines, GRID, np.zeros(GRID.shape, bool))


def test_glims_internal_rock_is_not_glacier(tmp_path):
    path = glims_file(tmp_path / "glims.gpkg", [row(GLACIER), row(ROCK, "intrnl_rock")])
    assert detect_format(path) == "glims"
    outlines = read_outlines(path, dt.date(2000, 8, 1), UTM)
    assert list(outlines["glacier_id"]) == ["G1"]
    assert outlines.geometry.iloc[0].area == pytest.approx(GLACIER.area - ROCK.area)
    mask = mask_of(outlines)
    assert (mask == 1).sum() == 16 * 16 - 4 * 4
    assert (mask[8:12, 8:12] == 0).all()  # the nunatak's pixels


@pytest.mark.parametrize("with_analysis_id", [True, False])
def test_glims_nearest_analysis_per_glacier(tmp_path, with_analysis_id):
    rows = [
        row(GLACIER, anlys_id=1, src_date="2000-08-01"),
        row(ROCK, "intrnl_rock", anlys_id=1, src_date="2000-08-01"),
        row(SMALL, anlys_id=2, src_date="2020-08-01"),
        row(box(X0 + 150, Y0 - 190, X0 + 190, Y0 - 150), glac_id="G2", anlys_id=3),
    ]
    if not with_analysis_id:
        for r in rows:
            del r["anlys_id"]
    path = glims_file(tmp_path / "glims.geojson", rows)
    early = read_outlines(path, dt.date(2003, 7, 1), UTM).set_index("glacier_id")
    late = read_outlines(path, dt.date(2016, 7, 1), UTM).set_index("glacier_id")
    assert early.geometry["G1"].area == pytest.approx(GLACIER.area - ROCK.area)
    # The 2020 analysis has no internal rock: the 2000 rock must not be cut from it.
    assert late.geometry["G1"].equals(SMALL)
    assert late["date"]["G1"] == np.datetime64("2020-08-01")
    assert set(late.index) == {"G1", "G2"}  # one analysis is enough for G2


def test_outlines_in_another_crs_are_reprojected(tmp_path):
    rows = [row(GLACIER), row(ROCK, "intrnl_rock")]
    native = read_outlines(glims_file(tmp_path / "utm.gpkg", rows), dt.date(2000, 1, 1), UTM)
    geographic = glims_file(tmp_path / "wgs84.gpkg", rows, crs="EPSG:4326")
    reprojected = read_outlines(geographic, dt.date(2000, 1, 1), UTM)
    assert reprojected.crs == UTM
    np.testing.assert_array_equal(mask_of(reprojected), mask_of(native))
    assert (mask_of(reprojected) == 1).sum() == 240


def test_rgi_outlines_and_glacier_selection(tmp_path):
    frame = gpd.GeoDataFrame(
        {"RGIId": ["RGI60-01.1", "RGI60-01.2"], "BgnDate": ["20001030", "-9999999"]},
        geometry=[GLACIER, SMALL],
        crs=UTM,
    )
    path = tmp_path / "rgi.gpkg"
    frame.to_file(path)
    assert detect_format(path) == "rgi"
    assert glacier_ids(path) == {"RGI60-01.1", "RGI60-01.2"}
    outlines = read_outlines(path, dt.date(2000, 1, 1), UTM, glaciers=["RGI60-01.2"])
    assert list(outlines["glacier_id"]) == ["RGI60-01.2"]
    with pytest.raises(ConfigError, match=r"data\.outlines\.glaciers.*RGI60-01\.9.*rgi\.gpkg"):
        read_outlines(path, dt.date(2000, 1, 1), UTM, glaciers=["RGI60-01.9"])


def test_empty_outline_file_is_refused(tmp_path):
    empty = gpd.GeoDataFrame({"line_type": [], "glac_id": [], "src_date": []}, geometry=[], crs=UTM)
    path = tmp_path / "empty.gpkg"
    empty.to_file(path)
    with pytest.raises(InputDataError, match=r"empty\.gpkg holds no outlines"):
        read_outlines(path, dt.date(2000, 1, 1), UTM)


def test_outline_file_of_unknown_schema_or_unreadable(tmp_path):
    other = gpd.GeoDataFrame({"name": ["x"]}, geometry=[GLACIER], crs=UTM)
    other.to_file(tmp_path / "other.gpkg")
    with pytest.raises(InputDataError, match=r"other\.gpkg.*data\.outlines\.format"):
        read_outlines(tmp_path / "other.gpkg", dt.date(2000, 1, 1), UTM)
    (tmp_path / "broken.gpkg").write_bytes(b"garbage")
    with pytest.raises(InputDataError, match=r"cannot read outline file .*broken\.gpkg"):
        read_outlines(tmp_path / "broken.gpkg", dt.date(2000, 1, 1), UTM)


def test_outlines_that_miss_the_scene_are_refused(tmp_path):
    far = box(X0 + 50000, Y0 - 50000, X0 + 51000, Y0 - 49000)
    outlines = read_outlines(
        glims_file(tmp_path / "far.gpkg", [row(far)]), dt.date(2000, 1, 1), UTM
    )
    with pytest.raises(InputDataError, match=r"far\.gpkg: no outline overlaps the scene"):
        require_overlap(outlines, GRID, tmp_path / "far.gpkg")
