"""Outlines from masks, area tables per zone and their change between dates."""

from __future__ import annotations

import geopandas as gpd
import matplotlib.text
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from scipy.ndimage import maximum_filter, minimum_filter
from shapely.geometry import box

from glaciermap.areas import change_figure as change_figure_module
from glaciermap.areas.area_tables import write_area_tables
from glaciermap.areas.areas import (
    MaskEntry,
    area_change_table,
    row_pixel_areas_km2,
    zone_areas,
)
from glaciermap.areas.change_figure import change_figure
from glaciermap.errors import InputDataError
from glaciermap.inference.vectorize import mask_to_outlines, vectorize_mask_file
from glaciermap.io.validity import MASKED, NO_DATA, VALID

CRS = "EPSG:32645"
TRANSFORM = Affine(30.0, 0.0, 478000.0, 0.0, -30.0, 3108140.0)
PIXEL_KM2 = 30.0 * 30.0 / 1e6
GRID = {"crs": CRS, "transform": TRANSFORM}  # keywords of the geotiff fixture


def glacier_mask(shrink: int = 0) -> np.ndarray:
    """Two glaciers with a nunatak, a diagonal pair, a speck and a nodata patch."""
    mask = np.zeros((60, 80), np.uint8)
    mask[5 : 40 - shrink, 5:35] = 1
    mask[15:20, 15:20] = 0  # nunatak: a hole
    mask[10 : 30 - shrink, 50:75] = 1
    mask[50, 50] = mask[51, 51] = 1  # diagonal neighbours: two areas
    mask[55:60, 70:80] = 255
    return mask


def test_outlines_are_valid_polygons_whose_area_matches_the_mask(tmp_path, geotiff):
    mask = glacier_mask()
    geotiff(tmp_path / "mask.tif", mask, **GRID, nodata=255)
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


def test_area_tables_are_consistent_with_the_masks(tmp_path, geotiff):
    before, after = glacier_mask(), glacier_mask(shrink=4)
    regions = np.zeros((60, 80), np.uint8)
    regions[:, :40], regions[:, 40:] = 1, 3
    reference = glacier_mask(shrink=2)
    # Date b has a cloud over the west glacier's tongue and beside it (masked),
    # date a a strip without data; both are unobserved.
    validity_a, validity_b = np.ones((60, 80), np.uint8), np.ones((60, 80), np.uint8)
    validity_a[:, 0:3] = NO_DATA
    validity_b[28:45, 20:40] = MASKED
    for name, array in [("a", before), ("b", after), ("ref_a", reference), ("ref_b", reference)]:
        geotiff(tmp_path / f"{name}.tif", array, **GRID, nodata=255)
    for name, array in [("valid_a", validity_a), ("valid_b", validity_b)]:
        geotiff(tmp_path / f"{name}.tif", array, **GRID)
    geotiff(tmp_path / "regions.tif", regions, **GRID)
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
        validity={"a": tmp_path / "valid_a.tif", "b": tmp_path / "valid_b.tif"},
        regions_path=tmp_path / "regions.tif",
        glaciers=glaciers,
        block_size=32,
    )
    areas = gpd.pd.read_csv(tmp_path / "areas.csv")
    change = gpd.pd.read_csv(tmp_path / "change.csv")
    seen = {"a": validity_a == VALID, "b": validity_b == VALID}

    def row(source, date, zone_type, zone):
        found = areas[
            (areas.source == source)
            & (areas.date == date)
            & (areas.zone_type == zone_type)
            & (areas.zone == zone)
        ]
        assert len(found) == 1
        return found.iloc[0]

    def km2(pixels):
        return pytest.approx(pixels.sum() * PIXEL_KM2)

    assert row("predicted", "a", "scene", "all").area_km2 == km2((before == 1) & seen["a"])
    assert row("predicted", "b", "scene", "all").unobserved_km2 == km2(~seen["b"])
    assert row("predicted", "b", "scene", "all").observed_km2 == km2(seen["b"])
    test_b = row("predicted", "b", "region", "test")
    assert test_b.area_km2 == km2(after[:, 40:] == 1) and test_b.unobserved_km2 == 0
    g1 = row("predicted", "b", "glacier", "G1")
    assert g1.area_km2 == km2((after[:, :40] == 1) & seen["b"][:, :40])
    assert g1.unobserved_km2 == km2(~seen["b"][:, :40])
    assert row("reference", "b", "region", "val").area_km2 == 0
    assert row("reference", "a", "scene", "all").unobserved_km2 == km2(~seen["a"])
    outlines_a = row("outlines", "a", "scene", "all")
    assert outlines_a.area_km2 == pytest.approx(
        row("predicted", "a", "scene", "all").area_km2 - 2 * PIXEL_KM2  # the two one-pixel specks
    )
    assert outlines_a.unobserved_km2 == km2(~seen["a"])
    assert set(areas[areas.source == "outlines"].zone_type) == {"scene"}

    # The change compares only the pixels seen on both dates, and says how many.
    common = seen["a"] & seen["b"]
    scene = change[(change.source == "predicted") & (change.zone == "all")].iloc[0]
    assert (scene.date_from, scene.date_to) == ("a", "b")
    assert scene.common_observed_km2 == km2(common)
    assert scene.area_from_km2 == km2((before == 1) & common)
    assert scene.area_to_km2 == km2((after == 1) & common)
    lost = ((before == 1) & (after != 1) & common).sum() * PIXEL_KM2
    assert scene.change_km2 == pytest.approx(-lost, abs=1e-6)
    assert lost < ((before == 1) & (after != 1)).sum() * PIXEL_KM2  # the cloud hid some loss
    assert scene.change_pct == pytest.approx(-100 * lost / scene.area_from_km2, abs=1e-4)
    g1 = change[(change.source == "predicted") & (change.zone == "G1")].iloc[0]
    assert g1.common_observed_km2 == km2(common[:, :40])
    ref = change[(change.source == "reference") & (change.zone == "all")].iloc[0]
    assert ref.change_km2 == 0 and ref.common_observed_km2 == km2(common)
    outlines = change[change.source == "outlines"]
    assert list(outlines.zone) == ["all"]
    assert outlines.iloc[0].change_km2 == pytest.approx(scene.change_km2, abs=1e-9)


def test_change_needs_known_dates_and_is_empty_for_one_date(tmp_path, geotiff):
    geotiff(tmp_path / "m.tif", glacier_mask(), **GRID, nodata=255)
    entry = MaskEntry("r", "m", "predicted", "x", tmp_path / "m.tif")
    assert area_change_table([entry], ["x"]).empty
    with pytest.raises(InputDataError, match="date order"):
        area_change_table([entry], ["y"])
    areas = zone_areas(entry)  # no validity raster: every pixel counts as observed
    scene = areas[areas.zone_type == "scene"].iloc[0]
    assert scene.observed_km2 == pytest.approx(60 * 80 * PIXEL_KM2) and scene.unobserved_km2 == 0


def pixel_centres(where: np.ndarray) -> np.ndarray:
    """Map coordinates (x, y) of the centres of the pixels ``where`` is True."""
    rows, cols = np.nonzero(where)
    return np.column_stack(TRANSFORM @ (cols + 0.5, rows + 0.5))


def away_from_edges(*masks: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood is all inside or all outside each mask:
    clear of the outlines drawn along the mask edges."""
    clear = np.ones(masks[0].shape, bool)
    for mask in masks:
        clear &= minimum_filter(mask, 3, mode="nearest") == maximum_filter(mask, 3, mode="nearest")
    return clear


def test_change_figure_colours_lost_and_gained_glacier_where_the_masks_differ(
    tmp_path, geotiff, png_at
):
    ramp = np.add.outer(np.arange(60) / 600, np.arange(80) / 80)  # grey: all bands equal
    scene = geotiff(tmp_path / "scene.tif", np.stack([ramp] * 4), **GRID, dtype="float32")
    before = np.zeros((60, 80), np.uint8)
    before[10:40, 10:50] = 1
    after = before.copy()
    after[:, 34:] = 0  # retreat on the east side
    after[44:54, 20:40] = 1  # advance to the south, clear of the earlier glacier
    masks = [
        geotiff(tmp_path / "a.tif", before, **GRID, nodata=255),
        geotiff(tmp_path / "b.tif", after, **GRID, nodata=255),
    ]
    out = tmp_path / "fig.png"
    figure = change_figure(scene, masks, ["a", "b"], out, "run")

    axes = figure.axes[0]
    assert axes.get_xlim() == (478000.0, 478000.0 + 80 * 30)  # the scene's bounds, its CRS
    assert axes.get_ylim() == (3108140.0 - 60 * 30, 3108140.0)
    # written in km with the EPSG code, as the overlays, and with a scale bar
    assert axes.xaxis.get_major_formatter()(478500.0, 0) == "478.5"
    assert "km, EPSG:32645" in axes.get_xlabel() and "km, EPSG:32645" in axes.get_ylabel()
    assert any(t.get_text() == "0.2 km" for t in axes.findobj(matplotlib.text.Text))  # of 2.4
    clear = away_from_edges(before, after)
    rgb = png_at(out, axes, pixel_centres(clear), change_figure_module.DPI)
    shown = np.isfinite(rgb[:, 0])
    assert shown.mean() > 0.8  # the legend covers a corner only
    lost, gained = (before == 1) & (after == 0), (after == 1) & (before == 0)
    expected = np.where(lost[clear], 1, np.where(gained[clear], -1, 0))[shown]
    redness = (rgb[:, 0] - rgb[:, 2])[shown]  # a grey pixel has none
    assert {1, -1, 0} <= set(expected)
    assert (redness[expected == 1] > 0.3).all()
    assert (redness[expected == -1] < -0.3).all()
    assert (np.abs(redness[expected == 0]) < 0.02).all()
    change = (int(after.sum()) - int(before.sum())) * PIXEL_KM2
    assert f"change {change:+.2f} km²" in axes.get_title()


def test_change_figure_of_one_date_shows_its_area_without_change_colours(tmp_path, geotiff, png_at):
    ramp = np.add.outer(np.arange(60) / 600, np.arange(80) / 80)
    scene = geotiff(tmp_path / "scene.tif", np.stack([ramp] * 4), **GRID, dtype="float32")
    mask = glacier_mask()
    path = geotiff(tmp_path / "a.tif", mask, **GRID, nodata=255)
    out = tmp_path / "fig.png"
    figure = change_figure(scene, [path], ["a"], out, "run")

    axes = figure.axes[0]
    clear = away_from_edges(mask == 1)
    rgb = png_at(out, axes, pixel_centres(clear), change_figure_module.DPI)
    rgb = rgb[np.isfinite(rgb[:, 0])]
    assert len(rgb) and (np.abs(rgb[:, 0] - rgb[:, 2]) < 0.02).all()  # nothing lost or gained
    assert f"glacier area {(mask == 1).sum() * PIXEL_KM2:.2f} km²" in axes.get_title()
