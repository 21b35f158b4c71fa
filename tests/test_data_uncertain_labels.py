"""Uncertain labels (data.labels): a band along every outline boundary and glaciers
with outlines too old for the scene become "no label" (255) in the mask.

Expected masks are computed here by brute force (chessboard distance of every
pixel to the nearest pixel of the other label), not with the package's code.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from glaciermap.config import validate_config
from glaciermap.data.prepare import prepare_mask
from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.io.grid import Grid
from glaciermap.io.scenes import write_scene
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER

CRS = "EPSG:32645"
X0, Y0, SIDE = 500000.0, 3100000.0, 30
TRANSFORM = Affine(10.0, 0, X0, 0, -10.0, Y0)


def pixels(row0: int, row1: int, col0: int, col1: int):
    """The box covering pixel rows row0..row1-1 and columns col0..col1-1."""
    return box(X0 + 10 * col0, Y0 - 10 * row1, X0 + 10 * col1, Y0 - 10 * row0)


FRESH = pixels(10, 20, 5, 15)  # outline of 2023, the scene's year
OLD = pixels(4, 12, 20, 27)  # outline of 2010
ROCK = pixels(13, 16, 8, 11)  # a nunatak inside the fresh glacier


def write_inputs(tmp_path, rgi_undated: bool = False) -> dict:
    scene = np.full((4, SIDE, SIDE), 0.3, np.float32)
    scene[:, 25:, 25:] = np.nan  # no data in a corner
    write_scene(scene, Grid(rasterio.crs.CRS.from_user_input(CRS), TRANSFORM, SIDE, SIDE),
                tmp_path / "scene.tif")  # fmt: skip
    if rgi_undated:
        frame = gpd.GeoDataFrame(
            {"RGIId": ["RGI60-01.00001", "RGI60-01.00002"], "BgnDate": ["20230601", "-9999999"]},
            geometry=[FRESH.difference(ROCK), OLD],
            crs=CRS,
        )
    else:
        frame = gpd.GeoDataFrame(
            {
                "glac_id": ["G1", "G1", "G2"],
                "line_type": ["glac_bound", "intrnl_rock", "glac_bound"],
                "anlys_id": [1, 1, 2],
                "src_date": ["2023-06-01", "2023-06-01", "2010-08-01"],
            },
            geometry=[FRESH, ROCK, OLD],
            crs=CRS,
        )
    frame.to_file(tmp_path / "outlines.gpkg")
    return scene


def make_mask(tmp_path, **labels) -> np.ndarray:
    data = {
        "scenes": {"july": {"acquired": "2023-07-15", "file": "scene.tif",
                            "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4}}},
        "outlines": {"file": "outlines.gpkg"},
        "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
        "labels": labels,
    }  # fmt: skip
    data = validate_config({"data": data})["data"]
    prepare_mask(data, "july", tmp_path / "scene.tif", tmp_path / "mask.tif", tmp_path)
    with rasterio.open(tmp_path / "mask.tif") as mask:
        assert mask.nodata == NODATA and mask.transform == TRANSFORM
        return mask.read(1)


def glacier_pixels(*outlines) -> np.ndarray:
    inside = np.zeros((SIDE, SIDE), bool)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    for outline, hole in outlines:
        xmin, ymin, xmax, ymax = outline.bounds
        here = (X0 + 10 * cols + 5 > xmin) & (X0 + 10 * cols + 5 < xmax)
        here &= (Y0 - 10 * rows - 5 > ymin) & (Y0 - 10 * rows - 5 < ymax)
        if hole is not None:
            hxmin, hymin, hxmax, hymax = hole.bounds
            in_hole = (X0 + 10 * cols + 5 > hxmin) & (X0 + 10 * cols + 5 < hxmax)
            in_hole &= (Y0 - 10 * rows - 5 > hymin) & (Y0 - 10 * rows - 5 < hymax)
            here &= ~in_hole
        inside |= here
    return inside


def within_of_other_label(glacier: np.ndarray, width: int) -> np.ndarray:
    """Brute force: chessboard distance of each pixel to the other label <= width."""
    coords = np.indices(glacier.shape).reshape(2, -1).T
    flat = glacier.ravel()
    near = np.zeros(flat.shape, bool)
    for label in (True, False):
        these, others = coords[flat == label], coords[flat != label]
        distance = np.abs(these[:, None, :] - others[None, :, :]).max(axis=2).min(axis=1)
        near[flat == label] = distance <= width
    return near.reshape(glacier.shape)


def test_default_keeps_every_label(tmp_path):
    write_inputs(tmp_path)
    mask = make_mask(tmp_path)
    glacier = glacier_pixels((FRESH, ROCK), (OLD, None))
    expected = np.where(glacier, GLACIER, NOT_GLACIER)
    expected[25:, 25:] = NODATA
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("width", [1, 2])
def test_band_along_every_outline_boundary_is_ignored(tmp_path, width):
    write_inputs(tmp_path)
    mask = make_mask(tmp_path, boundary_ignore_px=width)
    glacier = glacier_pixels((FRESH, ROCK), (OLD, None))
    band = within_of_other_label(glacier, width)
    expected = np.where(band, NODATA, np.where(glacier, GLACIER, NOT_GLACIER))
    expected[25:, 25:] = NODATA
    np.testing.assert_array_equal(mask, expected)
    assert band[13, 8] and band[12, 8]  # the nunatak's boundary counts too, on both sides
    assert mask[17, 12] == (GLACIER if width == 1 else NODATA)  # 2 px from the front


def test_glaciers_with_old_outlines_are_ignored(tmp_path):
    write_inputs(tmp_path)
    old = glacier_pixels((OLD, None))
    fresh = glacier_pixels((FRESH, ROCK))
    for years, ignored in ((5, True), (20, False)):
        mask = make_mask(tmp_path, max_outline_age_years=years)
        expected = np.where(fresh, GLACIER, NOT_GLACIER)
        expected[old] = NODATA if ignored else GLACIER
        expected[25:, 25:] = NODATA
        np.testing.assert_array_equal(mask, expected)

    # Both options: the old glacier's boundary band reaches outside it too.
    mask = make_mask(tmp_path, max_outline_age_years=5, boundary_ignore_px=1)
    band = within_of_other_label(fresh | old, 1)
    expected = np.where(band | old, NODATA, np.where(fresh, GLACIER, NOT_GLACIER))
    expected[25:, 25:] = NODATA
    np.testing.assert_array_equal(mask, expected)


def test_an_undated_outline_counts_as_too_old(tmp_path):
    write_inputs(tmp_path, rgi_undated=True)
    mask = make_mask(tmp_path, max_outline_age_years=5)
    assert (mask[glacier_pixels((OLD, None))] == NODATA).all()
    assert (mask[glacier_pixels((FRESH, ROCK))] == GLACIER).all()


def test_ignored_pixels_are_not_scored(tmp_path):
    write_inputs(tmp_path)
    reference = make_mask(tmp_path, boundary_ignore_px=1, max_outline_age_years=5)
    profile = {"driver": "GTiff", "width": SIDE, "height": SIDE, "count": 1, "dtype": "uint8",
               "crs": CRS, "transform": TRANSFORM, "nodata": NODATA}  # fmt: skip
    prediction = np.ones((SIDE, SIDE), np.uint8)  # glacier everywhere: wrong off the glaciers
    with rasterio.open(tmp_path / "pred.tif", "w", **profile) as out:
        out.write(prediction, 1)
    with rasterio.open(tmp_path / "regions.tif", "w", **{**profile, "nodata": None}) as out:
        out.write(np.full((1, SIDE, SIDE), 3, np.uint8))  # all test region
    scores = evaluate_prediction(
        tmp_path / "pred.tif", tmp_path / "mask.tif", tmp_path / "regions.tif"
    )
    labelled = reference != NODATA
    assert scores["test"]["n_pixels"] == labelled.sum()
    assert scores["test"]["tp"] == (reference == GLACIER).sum()
    assert scores["test"]["fp"] == (reference == NOT_GLACIER).sum()
