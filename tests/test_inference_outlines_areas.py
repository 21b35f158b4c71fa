"""Outlines from masks, area tables per zone and their change between dates."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from glaciermap.errors import InputDataError
from glaciermap.inference.area_tables import write_area_tables
from glaciermap.inference.areas import area_change, row_pixel_areas_km2, zone_areas
from glaciermap.inference.change_figure import change_figure
from glaciermap.inference.vectorize import mask_to_outlines, vectorize_mask_file

CRS = "EPSG:32645"
TRANSFORM = Affine(30.0, 0.0, 478000.0, 0.0, -30.0, 3108140.0)
PIXEL_KM2 = 30.0 * 30.0 / 1e6


def write_raster(path, array, dtype="uint8", nodata=255, crs=CRS, transform=TRANSFORM):
    count = 1 if array.ndim == 2 else array.shape[0]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=array.shape[-2],
        width=array.shape[-1],
        count=count,
        dtype=dtype,
        nodata=nodata,
        crs=crs,
        transform=transform,
    ) as out:
        out.write(array if array.ndim == 3 else array[None])
    return path


def glacier_mask(shrink: int = 0) -> np.ndarray:
    """Two glaciers with a nunatak, a diagonal pair, a speck and a nodata patch."""
    mask = np.zeros((60, 80), np.uint8)
    mask[5 : 40 - shrink, 5:35] = 1
    mask[15:20, 15:20] = 0  # nunatak: a hole
    mask[10 : 30 - shrink, 50:75] = 1
    mask[50, 50] = mask[51, 51] = 1  # diagonal neighbours: two areas
    mask[55:60, 70:80] = 255
    return mask


def test_outlines_are_valid_polygons_whose_area_matches_the_mask(tmp_path):
    mask = glacier_mask()
    write_raster(tmp_path / "mask.tif", mask)
    vectorize_mask_file(
        tmp_path / "mask.tif",
        tmp_path / "outlines.gpkg",
        min_area_km2=0.0,
        date="oct2000",
        model="fpn",
        run="fpn/x/oct2000/noaug/seed1",
    )
    outlines = gpd.read_file(tmp_path / "outlines.gpkg")
    assert list(outlines.columns[:4]) == ["area_km2", "date", "model", "run"]
    assert outlines.crs == CRS and len(outlines) == 4
    assert outlines.is_valid.all() and (outlines.geom_type == "Polygon").all()
    assert outlines.area_km2.sum() == pytest.approx((mask == 1).sum() * PIXEL_KM2)
    assert outlines.area.sum() / 1e6 == pytest.approx((mask == 1).sum() * PIXEL_KM2)
    assert sum(len(p.interiors) for p in outlines.geometry) == 1  # the nunatak is kept
    assert set(outlines.date) == {"oct2000"} and set(outlines.model) == {"fpn"}


def test_specks_below_the_minimum_area_are_removed():
    mask = glacier_mask()
    outlines = mask_to_outlines(mask, TRANSFORM, CRS, min_area_km2=2 * PIXEL_KM2)
    assert len(outlines) == 2
    assert outlines.area_km2.min() >= 2 * PIXEL_KM2


def test_geographic_pixel_areas_sum_to_the_ellipsoidal_area():
    transform = Affine(0.001, 0.0, 86.9, 0.0, -0.001, 28.1)
    areas = row_pixel_areas_km2(transform, rasterio.crs.CRS.from_epsg(4326), 100)
    geod = pyproj.Geod(ellps="WGS84")
    lons, lats = [86.9, 87.0, 87.0, 86.9], [28.1, 28.1, 28.0, 28.0]
    expected = abs(geod.polygon_area_perimeter(lons, lats)[0]) / 1e6
    assert areas.sum() * 100 == pytest.approx(expected, rel=1e-6)
    assert areas[0] < areas[-1]  # pixels grow towards the equator
    assert np.isnan(row_pixel_areas_km2(transform, None, 3)).all()


def test_area_tables_are_consistent_with_the_masks(tmp_path):
    before, after = glacier_mask(), glacier_mask(shrink=4)
    regions = np.zeros((60, 80), np.uint8)
    regions[:, :40], regions[:, 40:] = 1, 3
    reference = glacier_mask(shrink=2)
    for name, array in [("a", before), ("b", after), ("ref_a", reference), ("ref_b", reference)]:
        write_raster(tmp_path / f"{name}.tif", array)
    write_raster(tmp_path / "regions.tif", regions, nodata=None)
    west = box(*(TRANSFORM @ (0, 60)), *(TRANSFORM @ (40, 0)))  # columns 0-39
    glaciers = gpd.GeoDataFrame({"glacier_id": ["G1"]}, geometry=[west], crs=CRS)
    run = "fpn/dropout0.4-softmax-mean/a+b/noaug/seed1"
    for date in ("a", "b"):  # specks of 1 pixel dropped from the outlines
        vectorize_mask_file(
            tmp_path / f"{date}.tif",
            tmp_path / f"{date}.gpkg",
            min_area_km2=2 * PIXEL_KM2,
            date=date,
            model="fpn",
            run=run,
        )
    write_area_tables(
        [
            {
                "run": run,
                "date": d,
                "mask": tmp_path / f"{d}.tif",
                "outlines": tmp_path / f"{d}.gpkg",
            }
            for d in ("a", "b")
        ],
        {"a": tmp_path / "ref_a.tif", "b": tmp_path / "ref_b.tif"},
        ["a", "b"],
        tmp_path / "areas.csv",
        tmp_path / "change.csv",
        regions_path=tmp_path / "regions.tif",
        glaciers=glaciers,
        block_size=32,
    )
    areas = gpd.pd.read_csv(tmp_path / "areas.csv")
    change = gpd.pd.read_csv(tmp_path / "change.csv")

    def area(source, date, zone_type, zone):
        row = areas[
            (areas.source == source)
            & (areas.date == date)
            & (areas.zone_type == zone_type)
            & (areas.zone == zone)
        ]
        assert len(row) == 1
        return row.area_km2.iloc[0]

    assert area("predicted", "a", "scene", "all") == pytest.approx((before == 1).sum() * PIXEL_KM2)
    assert area("predicted", "b", "region", "test") == pytest.approx(
        (after[:, 40:] == 1).sum() * PIXEL_KM2
    )
    assert area("predicted", "a", "glacier", "G1") == pytest.approx(
        (before[:, :40] == 1).sum() * PIXEL_KM2
    )
    assert area("reference", "b", "region", "val") == 0
    assert area("outlines", "a", "scene", "all") == pytest.approx(
        area("predicted", "a", "scene", "all") - 2 * PIXEL_KM2  # the two one-pixel specks
    )
    row = change[(change.source == "predicted") & (change.zone == "all")].iloc[0]
    lost = ((before == 1) & (after != 1)).sum() * PIXEL_KM2
    assert row.change_km2 == pytest.approx(-lost, abs=1e-6)
    assert row.change_pct == pytest.approx(-100 * lost / row.area_from_km2, abs=1e-4)
    ref = change[(change.source == "reference") & (change.zone == "all")].iloc[0]
    assert ref.change_km2 == 0


def test_change_needs_known_dates_and_is_empty_for_one_date(tmp_path):
    write_raster(tmp_path / "m.tif", glacier_mask())
    table = zone_areas(tmp_path / "m.tif").assign(run="r", model="m", source="predicted", date="x")
    assert area_change(table, ["x"]).empty
    with pytest.raises(InputDataError, match="date order"):
        area_change(table, ["y"])


@pytest.mark.parametrize("n_dates", [1, 2])
def test_change_figure_for_one_or_two_dates(tmp_path, n_dates):
    scene = np.random.default_rng(0).random((4, 60, 80)).astype(np.float32)
    write_raster(tmp_path / "scene.tif", scene, dtype="float32", nodata=float("nan"))
    masks = [
        write_raster(tmp_path / "a.tif", glacier_mask()),
        write_raster(tmp_path / "b.tif", glacier_mask(shrink=6)),
    ][:n_dates]
    change_figure(tmp_path / "scene.tif", masks, ["a", "b"][:n_dates], tmp_path / "fig.png", "run")
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
