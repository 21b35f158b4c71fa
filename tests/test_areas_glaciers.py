"""Per-glacier partition, tables and outlines on a generated scene of known glaciers.

Two dates on a 30 m grid with two reference glaciers (RGI-like outlines):
glacier A advances 2 px beyond its outline on the first date (inside the
assignment distance) and retreats by 7 rows of 20 px on the second; glacier B
is half under a cloud on the second date; a new ice patch of 10 x 10 px lies
far from every outline on the second date. Areas are whole pixels, so the
expected values are exact; the tolerance (1e-6 km2) is the CSV's rounding.
"""

from __future__ import annotations

import contextlib
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box

from glaciermap.areas.area_tables import write_area_tables
from glaciermap.areas.glacier_figure import glacier_chart
from glaciermap.areas.glacier_outlines import glacier_features
from glaciermap.areas.glacier_tables import (
    GlacierSettings,
    glacier_grid,
    glacier_table,
    write_glacier_outlines,
    write_glacier_tables,
)
from glaciermap.areas.glaciers import (
    UNASSIGNED,
    GlacierGrid,
    glacier_areas,
    glacier_territory,
    partition,
    pixel_size_m,
)
from glaciermap.errors import InputDataError
from glaciermap.io.validity import MASKED, VALID

CRS_UTM = CRS.from_epsg(32645)
TRANSFORM = Affine(30.0, 0.0, 478000.0, 0.0, -30.0, 3108140.0)
PIXEL_KM2 = 30.0 * 30.0 / 1e6
SHAPE = (80, 80)
TOLERANCE_KM2 = 1e-6  # the tables are written with 6 decimals
MAX_DISTANCE_M = 100.0  # 3.3 pixels
RUN = "deeplabv3plus/dropout0.4-softmax-mean/d1+d2/noaug/seed{}"
ENSEMBLE = "ensemble/deeplabv3plus/dropout0.4-softmax-mean/d1+d2/noaug"
# (row0, row1, col0, col1) in pixels
A = (5, 35, 5, 25)  # 600 px
B = (5, 25, 40, 60)  # 400 px
NEW = (60, 70, 60, 70)  # 100 px, > 1 km from both outlines
RETREAT_PX = 7 * 20  # A: rows 5-37 on d1 (its 2-row advance), rows 5-30 on d2


def pixel_box(rows_cols):
    r0, r1, c0, c1 = rows_cols
    x0, y0 = TRANSFORM @ (c0, r0)
    x1, y1 = TRANSFORM @ (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def fill(mask, rows_cols, value=1):
    r0, r1, c0, c1 = rows_cols
    mask[r0:r1, c0:c1] = value


def scene(extra_retreat_rows: int = 0):
    """Masks and validity of the two dates (the member variant retreats further)."""
    first = np.zeros(SHAPE, np.uint8)
    fill(first, (5, 37, 5, 25))  # A, 2 px beyond its outline
    fill(first, B)
    second = np.zeros(SHAPE, np.uint8)
    fill(second, (5, 30 - extra_retreat_rows, 5, 25))
    fill(second, B)
    fill(second, NEW)
    validity_first = np.full(SHAPE, VALID, np.uint8)
    validity_second = np.full(SHAPE, VALID, np.uint8)
    cloud = (0, 40, 50, 80)  # B's right half and beyond
    fill(validity_second, cloud, MASKED)
    fill(second, cloud, 255)  # the predicted mask's nodata under the cloud
    return (first, second), (validity_first, validity_second)


@pytest.fixture
def outlines_file(tmp_path):
    frame = gpd.GeoDataFrame(
        {
            "RGIId": ["RGI60-15.00009", "RGI60-15.00001", "RGI60-15.00002"],
            "Name": ["Far Glacier", "Alpha Glacier", None],
        },
        geometry=[pixel_box((-50, -40, 0, 10)), pixel_box(A), pixel_box(B)],  # first: off the grid
        crs=CRS_UTM,
    )
    path = tmp_path / "rgi.gpkg"
    frame.to_file(path)
    return path


@pytest.fixture
def workflow_files(tmp_path, geotiff):
    """Two member runs and their ensemble on dates d1, d2, written like the workflow's."""
    grid = {"crs": CRS_UTM, "transform": TRANSFORM}
    validity = {}
    maps = []
    for date, flags in zip(("d1", "d2"), scene()[1], strict=True):
        validity[date] = str(geotiff(tmp_path / f"validity/{date}.tif", flags, **grid))
    for name, extra in (("ens", 0), (RUN.format(1), 0), (RUN.format(2), 2)):
        for date, mask in zip(("d1", "d2"), scene(extra)[0], strict=True):
            folder = tmp_path / "maps" / name / date
            description = ["glacier (probability >= 0.5)"]
            probability = np.where(mask == 1, 0.9, 0.1).astype(np.float32)
            record = {
                "run": ENSEMBLE if name == "ens" else name,
                "date": date,
                "mask": str(
                    geotiff(folder / "mask.tif", mask, **grid, nodata=255, descriptions=description)
                ),
                "probability": str(geotiff(folder / "probability.tif", probability, **grid)),
            }
            if name == "ens":
                uncertainty = np.full(SHAPE, 0.05, np.float32)
                record["uncertainty"] = str(
                    geotiff(folder / "uncertainty.tif", uncertainty, **grid)
                )
                record["members"] = [RUN.format(1), RUN.format(2)]
            maps.append(record)
    return maps, validity


def build_grid(outlines_file, validity):
    return glacier_grid({"file": str(outlines_file)}, "2000-10-30", validity["d1"], MAX_DISTANCE_M)


def test_territory_distance_in_metres_and_nearest_outline():
    zones = np.zeros((1, 30), np.int32)
    zones[0, 0] = 1
    zones[0, 12] = 2
    territory = glacier_territory(zones, 100.0, (30.0, 30.0))
    # 3 px = 90 m from an outline is inside the distance, 4 px = 120 m is not
    assert territory[0, 3] == 1 and territory[0, 4] == UNASSIGNED
    assert territory[0, 9] == 2 and territory[0, 8] == UNASSIGNED
    assert territory[0, 15] == 2 and territory[0, 16] == UNASSIGNED
    close = np.zeros((1, 7), np.int32)
    close[0, 0], close[0, 6] = 1, 2
    # each pixel goes to the nearer outline: 1, 2 px from the first, 4, 5 from the second
    assert list(glacier_territory(close, 100.0, (30.0, 30.0))[0]) == [1, 1, 1, 1, 2, 2, 2]


def test_partition_assigns_observed_glacier_pixels_only():
    territory = np.array([[1, 1, UNASSIGNED, 2]], np.int32)
    mask = np.array([[1, 255, 1, 1]], np.uint8)
    observed = np.array([[True, False, True, False]])
    assert list(partition(mask, observed, territory)[0]) == [1, 0, UNASSIGNED, 0]


def test_known_glaciers_areas_changes_flags_and_new_ice(tmp_path, outlines_file, workflow_files):
    maps, validity = workflow_files
    grid = build_grid(outlines_file, validity)
    acquired = {"d1": "2000-10-30", "d2": "2001-10-12"}
    settings = GlacierSettings(MAX_DISTANCE_M, 0.8)
    write_glacier_tables(
        maps,
        grid,
        validity,
        acquired,
        ["d1", "d2"],
        settings,
        tmp_path / "glaciers.csv",
        tmp_path / "glacier_change.csv",
    )
    table = pd.read_csv(tmp_path / "glaciers.csv")
    rows = table[table["run"] == ENSEMBLE].set_index(["date", "glacier_id"])
    a, b = "RGI60-15.00001", "RGI60-15.00002"
    expected = {
        ("d1", a): (600, 640, 1.0),
        ("d1", b): (400, 400, 1.0),
        ("d2", a): (600, 500, 1.0),
        ("d2", b): (400, 200, 0.5),  # half under the cloud
    }
    for key, (reference_px, mapped_px, fraction) in expected.items():
        row = rows.loc[key]
        assert row["reference_km2"] == pytest.approx(reference_px * PIXEL_KM2, abs=TOLERANCE_KM2)
        assert row["area_km2"] == pytest.approx(mapped_px * PIXEL_KM2, abs=TOLERANCE_KM2)
        assert row["observed_fraction"] == pytest.approx(fraction)
        assert row["mean_probability"] == pytest.approx(0.9, abs=1e-6)
        assert row["mean_uncertainty"] == pytest.approx(0.05, abs=1e-6)
        assert row["threshold"] == 0.5 and row["members"] == 2
    assert rows.loc[("d1", a), "name"] == "Alpha Glacier" and pd.isna(rows.loc[("d1", b), "name"])
    assert rows.loc[("d2", "unassigned"), "area_km2"] == pytest.approx(100 * PIXEL_KM2, abs=1e-6)
    assert rows.loc[("d1", "unassigned"), "area_km2"] == 0
    assert set(rows["acquired"]) == set(acquired.values())
    assert "RGI60-15.00009" not in set(table["glacier_id"])  # no pixel on the grid
    # the second member retreats 2 rows more on d2: the ensemble's range shows it
    assert rows.loc[("d2", a), "member_min_km2"] == pytest.approx(460 * PIXEL_KM2, abs=1e-6)
    assert rows.loc[("d2", a), "member_max_km2"] == pytest.approx(500 * PIXEL_KM2, abs=1e-6)
    assert table[table["run"] == RUN.format(1)]["members"].isna().all()

    change = pd.read_csv(tmp_path / "glacier_change.csv")
    rows = change[change["run"] == ENSEMBLE].set_index("glacier_id")
    assert rows.loc[a, "change_km2"] == pytest.approx(-RETREAT_PX * PIXEL_KM2, abs=1e-6)
    assert not rows.loc[a, "low_observed"]
    # B is compared over its observed left half only: no change, and flagged
    assert rows.loc[b, "common_observed_fraction"] == pytest.approx(0.5)
    assert rows.loc[b, "change_km2"] == pytest.approx(0.0, abs=1e-6)
    assert rows.loc[b, "area_from_km2"] == pytest.approx(200 * PIXEL_KM2, abs=1e-6)
    assert rows.loc[b, "low_observed"] and rows.loc[b, "min_observed_fraction"] == 0.8
    assert rows.loc["unassigned", "change_km2"] == pytest.approx(100 * PIXEL_KM2, abs=1e-6)
    assert not rows.loc["unassigned", "low_observed"]
    assert rows.loc[a, "member_min_change_km2"] == pytest.approx(-180 * PIXEL_KM2, abs=1e-6)
    assert rows.loc[a, "member_max_change_km2"] == pytest.approx(-140 * PIXEL_KM2, abs=1e-6)

    # regional sums reconcile with areas.csv and area_change.csv of the same maps
    write_area_tables(
        maps,
        {},
        ["d1", "d2"],
        tmp_path / "areas.csv",
        tmp_path / "area_change.csv",
        validity=validity,
        glaciers=gpd.read_file(outlines_file).rename(columns={"RGIId": "glacier_id"}),
    )
    areas = pd.read_csv(tmp_path / "areas.csv")
    scene_areas = areas[(areas["zone_type"] == "scene") & (areas["source"] == "predicted")]
    sums = table.groupby(["run", "date"])["area_km2"].sum()
    assert len(scene_areas) == len(sums) == 6
    for _, row in scene_areas.iterrows():
        assert sums[(row["run"], row["date"])] == pytest.approx(row["area_km2"], abs=1e-5)
    area_change = pd.read_csv(tmp_path / "area_change.csv")
    scene_change = area_change[
        (area_change["zone_type"] == "scene") & (area_change["source"] == "predicted")
    ].set_index("run")
    change_sums = change.groupby("run")[["area_from_km2", "change_km2"]].sum()
    for run, row in change_sums.iterrows():
        assert row["area_from_km2"] == pytest.approx(
            scene_change.loc[run, "area_from_km2"], abs=1e-5
        )
        assert row["change_km2"] == pytest.approx(scene_change.loc[run, "change_km2"], abs=1e-5)


def test_per_glacier_outlines_of_an_ensemble(tmp_path, outlines_file, workflow_files):
    maps, validity = workflow_files
    grid = build_grid(outlines_file, validity)
    ensemble = next(m for m in maps if m["run"] == ENSEMBLE and m["date"] == "d2")
    members = [m for m in maps if m["run"] in ensemble["members"] and m["date"] == "d2"]
    out = tmp_path / "glaciers.gpkg"
    write_glacier_outlines(
        ensemble, grid, validity["d2"], "2001-10-12", out, members=members, min_area_km2=0.01
    )
    assert pyogrio.list_layers(out).tolist() == [["glaciers", "MultiPolygon"]]
    # GeoPackage 1.2: Debian 12's GDAL 3.6 warns on the 1.4 that newer GDALs write
    with contextlib.closing(sqlite3.connect(out)) as database:
        assert database.execute("PRAGMA user_version").fetchone()[0] == 10200
    features = pyogrio.read_dataframe(out).set_index("glacier_id")
    assert features.crs == CRS_UTM and features.is_valid.all()
    assert list(features["kind"]) == ["glacier", "glacier", "unassigned"]
    a, b = features.loc["RGI60-15.00001"], features.loc["RGI60-15.00002"]
    assert a["area_km2"] == pytest.approx(500 * PIXEL_KM2)
    assert a.geometry.area / 1e6 == pytest.approx(500 * PIXEL_KM2)
    assert a["perimeter_km"] == pytest.approx(2 * (25 + 20) * 0.03)
    assert b["perimeter_km"] == pytest.approx(2 * (20 + 10) * 0.03)
    assert b["observed_fraction"] == pytest.approx(0.5) and a["observed_fraction"] == 1.0
    assert a["member_min_km2"] == pytest.approx(460 * PIXEL_KM2)
    assert a["member_max_km2"] == pytest.approx(500 * PIXEL_KM2)
    assert a["name"] == "Alpha Glacier" and a["date"] == "2001-10-12" and a["run"] == ENSEMBLE
    assert a["mean_probability"] == pytest.approx(0.9) and a["threshold"] == 0.5
    new = features.loc["unassigned"]
    assert new["area_km2"] == pytest.approx(100 * PIXEL_KM2)
    assert np.isnan(new["member_min_km2"]) and np.isnan(new["observed_fraction"])


def test_areas_of_a_map_sum_to_its_glacier_pixels():
    zones = np.zeros(SHAPE, np.int32)
    fill(zones, A, 1)
    outlines = gpd.GeoDataFrame({"glacier_id": ["X"]}, geometry=[pixel_box(A)], crs=CRS_UTM)
    grid = GlacierGrid.build(outlines, SHAPE, TRANSFORM, CRS_UTM, MAX_DISTANCE_M)
    assert (grid.zones == zones).all()
    mask = scene()[0][1]
    observed = mask != 255
    rows = glacier_areas(grid, mask, observed)
    assert rows["area_km2"].sum() == pytest.approx(((mask == 1) & observed).sum() * PIXEL_KM2)


def test_the_glacier_chart_shows_changes_with_member_ranges_and_flags(
    tmp_path, outlines_file, workflow_files
):
    maps, validity = workflow_files
    grid = build_grid(outlines_file, validity)
    acquired = {"d1": "2000-10-30", "d2": "2001-10-12"}
    tables = (tmp_path / "glaciers.csv", tmp_path / "change.csv")
    settings = GlacierSettings(MAX_DISTANCE_M, 0.8)
    write_glacier_tables(maps, grid, validity, acquired, ["d1", "d2"], settings, *tables)
    figure = glacier_chart(*tables, ENSEMBLE, tmp_path / "chart.png")
    axes = figure.axes[0]
    bars = {label.get_text(): patch for label, patch in zip(
        axes.get_yticklabels(), axes.patches, strict=False)}  # fmt: skip
    assert set(bars) == {
        "RGI60-15.00001 Alpha Glacier", "RGI60-15.00002 (partly observed)", "unassigned",
    }  # fmt: skip
    assert bars["RGI60-15.00001 Alpha Glacier"].get_width() == pytest.approx(-140 * PIXEL_KM2)
    assert bars["unassigned"].get_width() == pytest.approx(100 * PIXEL_KM2)
    assert bars["RGI60-15.00002 (partly observed)"].get_hatch() == "///"
    (errors,) = [c for c in axes.containers if getattr(c, "has_xerr", False)]
    segments = errors.lines[2][0].get_segments()
    spans = sorted(round(abs(s[1][0] - s[0][0]) / PIXEL_KM2) for s in segments)
    assert spans == [0, 0, 40]  # A's members changed by -140 and -180 pixels

    one_date = [m for m in maps if m["date"] == "d1"]
    write_glacier_tables(one_date, grid, validity, acquired, ["d1"], settings, *tables)
    figure = glacier_chart(*tables, ENSEMBLE, tmp_path / "chart1.png")
    widths = sorted(round(p.get_width() / PIXEL_KM2) for p in figure.axes[0].patches[:4])
    assert widths == [400, 400, 600, 640]  # reference and mapped areas of B and A
    assert "one date" in figure.axes[0].get_title()


def test_pixel_size_is_measured_in_metres_on_projected_and_geographic_grids():
    assert pixel_size_m(TRANSFORM, CRS_UTM, SHAPE) == (30.0, 30.0)
    degrees = Affine(0.001, 0.0, 86.9, 0.0, -0.001, 28.1)
    north, east = pixel_size_m(degrees, CRS.from_epsg(4326), (200, 100))
    geod = pyproj.Geod(ellps="WGS84")
    assert east == pytest.approx(geod.inv(86.95, 28.0, 86.951, 28.0)[2], rel=1e-6)
    assert north == pytest.approx(geod.inv(86.95, 28.0, 86.95, 27.999)[2], rel=1e-6)
    assert 95 < east < north < 112  # a degree of longitude shrinks away from the equator


def test_smoothing_rounds_the_staircase_and_keeps_the_pixel_areas(tmp_path):
    outlines = gpd.GeoDataFrame({"glacier_id": ["X"]}, geometry=[pixel_box(A)], crs=CRS_UTM)
    grid = GlacierGrid.build(outlines, SHAPE, TRANSFORM, CRS_UTM, MAX_DISTANCE_M)
    mask = np.zeros(SHAPE, np.uint8)
    for row in range(5, 35):  # a staircase: one pixel further per row
        mask[row, 5 : 5 + row - 4] = 1
    observed = np.ones(SHAPE, bool)
    pixels = glacier_features(grid, mask, observed)
    smooth = glacier_features(grid, mask, observed, smoothing=3)
    assert smooth["area_km2"].tolist() == pixels["area_km2"].tolist()  # the pixels' own
    staircase, rounded = pixels.geometry.iloc[0], smooth.geometry.iloc[0]
    assert rounded.is_valid and len(rounded.exterior.coords if rounded.geom_type == "Polygon"
                                      else rounded.geoms[0].exterior.coords) > 100  # fmt: skip
    # the steps are cut: the ring is shorter, the area within a few percent of the pixels'
    assert rounded.length < 0.95 * staircase.length
    assert rounded.area == pytest.approx(staircase.area, rel=0.03)
    assert rounded.hausdorff_distance(staircase) < 30.0  # within a pixel


def test_a_map_on_another_grid_is_refused_with_its_name(tmp_path, geotiff, outlines_file):
    flags = geotiff(tmp_path / "validity.tif", scene()[1][0], crs=CRS_UTM, transform=TRANSFORM)
    grid = glacier_grid({"file": str(outlines_file)}, "2000-10-30", flags, MAX_DISTANCE_M)
    shifted = TRANSFORM * Affine.translation(3, 0)
    mask = geotiff(tmp_path / "mask.tif", scene()[0][0], crs=CRS_UTM, transform=shifted)
    record = {"run": RUN.format(1), "date": "d1", "mask": str(mask)}
    with pytest.raises(InputDataError, match=r"mask.tif \(mask\) is not on the grid"):
        glacier_table(grid, [record], {"d1": flags}, {"d1": "2000-10-30"})
