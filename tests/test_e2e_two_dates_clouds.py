"""End to end on two Sentinel-2 L2A-shaped dates made from the Everest demo scene:
a glacier tongue retreats between July and August, and August has a cloud over
part of the tongue and a shadow over rock, with their SCL classes.

The test writes both dates as L2A band files (DN = reflectance-like value * 37
+ 1000, baseline 05.09) with a 2x-coarser SCL, and GLIMS outlines with two
analyses of the retreating glacier (the tongue is gone from the August one).
With every stage winner pinned only the three final runs train (one epoch,
32-px tiles). Checked: Table 3 has both dates and the three final models;
the cloud and shadow are unobserved in the area table and nodata in the
predicted maps; the reference area change over the area observed on both
dates equals the known retreat (the tongue without its clouded part) within
two pixels; the predicted change is measured over that same area.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from affine import Affine
from html_tables import read_html_tables
from rasterio.features import rasterize
from rasterio.windows import Window
from sentinel2_products import SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM, SCL_SHADOW, write_product
from shapely.geometry import box

from glaciermap.inference.provenance import read_provenance
from glaciermap.io.validity import MASKED, VALID

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "everest"
WINDOW = Window(114, 285, 384, 320)  # around Khumbu Glacier (RGI60-15.03733), 30 m pixels
GLACIER = "RGI60-15.03733"
PIXEL_KM2 = 0.03 * 0.03
TOLERANCE_KM2 = 2 * PIXEL_KM2  # polygon edges may take or leave a pixel centre
SCL_SNOW, SCL_ROCK = 11, 5
CELL = {"dropout": 0.4, "activation": "softmax", "pooling": "mean"}


def crop() -> tuple[np.ndarray, Affine, str]:
    """The Everest bands in the window as L2A-like DNs (4, H, W) blue, green, red, nir."""
    with rasterio.open(DATA / "LE71400412000304SGS00_RGB.tif") as rgb:
        red, green, blue = rgb.read((1, 2, 3), window=WINDOW).astype(np.uint16)
        transform, crs = rgb.window_transform(WINDOW), rgb.crs.to_string()
    with rasterio.open(DATA / "LE71400412000304SGS00_B4.tif") as b4:
        nir = b4.read(1, window=WINDOW).astype(np.uint16)
    return 1000 + 37 * np.stack([blue, green, red, nir]), transform, crs


def make_inputs(work: Path) -> dict:
    dns, transform, crs = crop()
    height, width = dns.shape[1:]
    rgi = gpd.read_file(DATA / "15_rgi60_glacier_outlines.gpkg").to_crs(crs)
    west, south, east, north = rasterio.transform.array_bounds(height, width, transform)
    scene_box = box(west, south, east, north)
    rgi = rgi[rgi.intersects(scene_box)]
    glacier = rgi[rgi.RGIId == GLACIER].geometry.iloc[0]
    xmin, ymin, _, _ = glacier.bounds
    # The tongue: the glacier's lowest 2.4 km, cut on pixel edges.
    top = transform.f + transform.e * round((ymin + 2400 - transform.f) / transform.e)
    tongue = glacier.intersection(box(xmin - 100, ymin - 100, glacier.bounds[2] + 100, top))

    def pixels(geometry) -> np.ndarray:
        return rasterize([(geometry, 1)], out_shape=(height, width), transform=transform) == 1

    glaciers = rasterize([(g, 1) for g in rgi.geometry], out_shape=(height, width),
                         transform=transform) == 1  # fmt: skip
    tongue_px = pixels(tongue)
    # SCL: snow and ice where bright, rock elsewhere; 2x coarser than the bands.
    bright = dns[0, ::2, ::2] > 1000 + 37 * 160
    scl_july = np.where(bright, SCL_SNOW, SCL_ROCK).astype(np.uint8)
    scl_august = scl_july.copy()
    rows, cols = np.nonzero(tongue_px)
    r0, c0 = rows.min() // 2, (cols.min() + cols.max()) // 4  # cloud over the tongue's east
    cloud = (slice(r0, r0 + 12), slice(c0, c0 + 15))
    scl_august[cloud] = SCL_CLOUD_HIGH
    scl_august[r0 + 12, c0 : c0 + 15] = SCL_CLOUD_MEDIUM
    rock_rows, rock_cols = np.nonzero(~glaciers[::2, ::2])
    shadow = (slice(rock_rows[0], rock_rows[0] + 4), slice(rock_cols[0], rock_cols[0] + 4))
    scl_august[shadow] = SCL_SHADOW

    august = dns.copy()
    rock = ~glaciers & (dns[0] < np.median(dns[0][~glaciers]))
    for band in range(4):
        august[band][tongue_px] = np.median(dns[band][rock])  # the retreated tongue is rock
    clouded = np.repeat(np.repeat(np.isin(scl_august, [3, 8, 9]), 2, 0), 2, 1)
    august[:, clouded & (np.repeat(np.repeat(scl_august, 2, 0), 2, 1) != SCL_SHADOW)] = 9000

    july_input = write_product(work, "45RVL", "20230715", dns, scl_july, transform, crs)
    august_input = write_product(work, "45RVL", "20230814", august, scl_august, transform, crs)

    # GLIMS outlines: the retreating glacier has a July and an August analysis.
    rows = []
    for i, (glacier_id, geometry) in enumerate(zip(rgi.RGIId, rgi.geometry, strict=True)):
        rows.append((glacier_id, 1000 + i, "2009-10-15", geometry))
    rows.append((GLACIER, 5000, "2023-07-10", glacier))
    rows.append((GLACIER, 5001, "2023-08-20", glacier.difference(tongue)))
    rows = [r for r in rows if not (r[0] == GLACIER and r[1] < 5000)]
    outlines = gpd.GeoDataFrame(
        {"glac_id": [r[0] for r in rows], "anlys_id": [r[1] for r in rows],
         "src_date": [r[2] for r in rows], "line_type": "glac_bound"},
        geometry=[r[3] for r in rows], crs=crs,
    )  # fmt: skip
    outlines.to_file(work / "glims.gpkg")
    return {
        "july": july_input,
        "august": august_input,
        "tongue": tongue_px,
        "unobserved_august": clouded,
        "transform": transform,
    }


def config(inputs: dict, transform: Affine) -> dict:
    top = transform.f
    split = top - 200 * 30  # train: the south (with the tongue), test: the north
    return {
        "data": {
            "scenes": {
                "july": {"acquired": "2023-07-15", "product": "sentinel2_l2a", **inputs["july"]},
                "august": {"acquired": "2023-08-14", "product": "sentinel2_l2a",
                           **inputs["august"]},
            },
            "outlines": {"file": "glims.gpkg", "format": "glims"},
            "regions": {
                "train": {"bbox": [transform.c, split - 120 * 30, transform.c + 384 * 30, split]},
                "test": {"bbox": [transform.c, split, transform.c + 384 * 30, top]},
            },
            "tiles": {"size": 32, "stride": 32, "val_fraction": 0.2, "val_block_tiles": 2},
        },
        "seeds": [1],
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.001, "encoder": "resnet18",
                     "selection_epochs": 1, "image_every": 1, "device": "cpu", "threads": 1},
        "model_selection": {"models": ["pspnet"], "winner": "pspnet", "hparams": CELL},
        "hparam_grid": {"dropout": [0.4], "activation": ["softmax"], "pooling": ["mean"],
                        "winner": CELL},
        "augmentation": {"compare": ["noaug"], "winner": "noaug"},
        "final": {"train_on": ["each", "all"]},
        "inference": {"window": 32, "margin": 0, "batch_size": 32, "block_size": 256},
    }  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, snakemake) -> dict:
    work = tmp_path_factory.mktemp("two_dates")
    inputs = make_inputs(work)
    done = snakemake(work, config=config(inputs, inputs["transform"]), cores=2)
    return {"work": work, **inputs, "log": done.output}


def test_table3_has_both_dates_and_the_three_final_models(run):
    table3 = pd.read_csv(run["work"] / "results/table3.csv")
    models = table3[~table3["baseline"]]
    assert sorted(models["trained_on"]) == ["august", "july", "july+august"]
    assert set(models["model"]) == {"pspnet"}
    for date in ("july", "august"):
        assert models[f"f1_{date}_mean"].between(0, 1).all()
    assert sorted(table3[table3["baseline"]]["trained_on"]) == ["august", "july", "july+august"]
    trained = sorted(p.parts[-4] for p in (run["work"] / "results/runs").glob("**/metrics.json"))
    assert trained == ["august", "july", "july+august"]  # only the final runs trained


def test_the_cloud_is_unobserved_in_validity_maps_and_area_table(run):
    results = run["work"] / "results"
    unobserved = run["unobserved_august"]
    with rasterio.open(results / "validity/august.tif") as validity:
        codes = validity.read(1)
    np.testing.assert_array_equal(codes, np.where(unobserved, MASKED, VALID))
    with rasterio.open(results / "validity/july.tif") as validity:
        assert (validity.read(1) == VALID).all()
    with rasterio.open(results / "scenes/august.tif") as scene:
        np.testing.assert_array_equal(np.isnan(scene.read()).all(axis=0), unobserved)
    for run_dir in (results / "maps").glob("pspnet/*/*/noaug/seed1"):
        with rasterio.open(run_dir / "august/mask.tif") as mask:
            np.testing.assert_array_equal(mask.read(1) == 255, unobserved)
    areas = pd.read_csv(results / "maps/areas.csv")
    scene_rows = areas[(areas.zone_type == "scene") & (areas.source != "outlines")]
    for _, row in scene_rows.iterrows():
        expected = unobserved.sum() * PIXEL_KM2 if row.date == "august" else 0.0
        assert row.unobserved_km2 == pytest.approx(expected, abs=1e-6)
        assert row.observed_km2 + row.unobserved_km2 == pytest.approx(384 * 320 * PIXEL_KM2)


def test_area_change_over_the_common_area_is_the_known_retreat(run):
    results = run["work"] / "results"
    change = pd.read_csv(results / "maps/area_change.csv")
    common = ~run["unobserved_august"]
    known = (run["tongue"] & common).sum() * PIXEL_KM2  # the tongue as far as both dates saw it
    hidden = (run["tongue"] & ~common).sum() * PIXEL_KM2
    assert known > 0.5 and hidden > 0.05  # a real retreat, partly under the cloud

    reference = change[(change.source == "reference") & (change.zone_type == "scene")].iloc[0]
    assert (reference.date_from, reference.date_to) == ("july", "august")
    assert reference.common_observed_km2 == pytest.approx(common.sum() * PIXEL_KM2, abs=1e-6)
    assert reference.change_km2 == pytest.approx(-known, abs=TOLERANCE_KM2)
    glacier = change[(change.source == "reference") & (change.zone == GLACIER)].iloc[0]
    assert glacier.change_km2 == pytest.approx(-known, abs=TOLERANCE_KM2)

    predicted = change[(change.source == "predicted") & (change.zone_type == "scene")]
    assert len(predicted) == 3
    for _, row in predicted.iterrows():
        masks = []
        for date in ("july", "august"):
            with rasterio.open(results / f"maps/{row.run}/{date}/mask.tif") as mask:
                masks.append(mask.read(1) == 1)
        assert row.common_observed_km2 == pytest.approx(common.sum() * PIXEL_KM2, abs=1e-6)
        measured = ((masks[1] & common).sum() - (masks[0] & common).sum()) * PIXEL_KM2
        assert row.change_km2 == pytest.approx(measured, abs=1e-6)
    assert (results / "figures/area_change.png").stat().st_size > 0
    assert (results / "figures/overlay_train_august.png").stat().st_size > 0


def test_per_glacier_tables_and_outlines_reconcile_with_the_area_tables(run):
    results = run["work"] / "results"
    glaciers = pd.read_csv(results / "maps/glaciers.csv")
    areas = pd.read_csv(results / "maps/areas.csv")
    scene = areas[(areas.zone_type == "scene") & (areas.source == "predicted")]
    sums = glaciers.groupby(["run", "date"])["area_km2"].sum()
    assert len(sums) == len(scene) + 6  # the final runs, plus three baselines on two dates
    for _, row in scene.iterrows():
        assert sums[(row.run, row.date)] == pytest.approx(row.area_km2, abs=1e-5)
    assert set(glaciers.acquired) == {"2023-07-15", "2023-08-14"}
    # the clouded tongue: the glacier's observed share drops on the clouded date only
    tongue = glaciers[glaciers.glacier_id == GLACIER].set_index(["run", "date"]).observed_fraction
    assert (tongue.xs("july", level="date") == 1).all()
    assert (tongue.xs("august", level="date") < 1).all()

    change = pd.read_csv(results / "maps/glacier_change.csv")
    area_change = pd.read_csv(results / "maps/area_change.csv")
    scene_change = area_change[
        (area_change.zone_type == "scene") & (area_change.source == "predicted")
    ].set_index("run")
    for run_name, rows in change[change.run.isin(scene_change.index)].groupby("run"):
        assert rows.change_km2.sum() == pytest.approx(
            scene_change.loc[run_name, "change_km2"], abs=1e-5
        )
    outlines = gpd.read_file(
        next((results / "maps").glob("pspnet/*/*/noaug/seed1/august/outlines.gpkg"))
    )
    assert set(outlines.date) == {"2023-08-14"}  # the acquisition date, not the label
    for name, record in glaciers.groupby(["run", "date"]).groups.items():
        outlines = gpd.read_file(results / f"maps/{name[0]}/{name[1]}/glaciers.gpkg")
        assert outlines.crs is not None and outlines.is_valid.all()
        table = glaciers.loc[record].set_index("glacier_id").area_km2
        found = outlines[outlines.kind == "glacier"].set_index("glacier_id").area_km2
        np.testing.assert_allclose(found, table[found.index], atol=1e-5)
        # a model's per-glacier outlines carry its mask's provenance (no checkpoint: none)
        folder = results / f"maps/{name[0]}/{name[1]}"
        metadata = pyogrio.read_info(folder / "glaciers.gpkg")["layer_metadata"] or {}
        assert metadata == read_provenance(folder / "mask.tif")
        assert ("checkpoints_sha256" in metadata) == (not name[0].startswith("baseline/"))


def test_report_lists_only_the_tables_made_and_shows_the_area_change(run, snakemake):
    """Every stage winner is pinned: the front page names Table 3 only, and the area
    change table (one row per run, source and zone) is an HTML table in the report."""
    work = run["work"]
    snakemake(work, "--report", "report.html", config=work / "config.yaml", cores=None)
    html = (work / "report.html").read_text()
    front = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", html)[1])
    assert set(re.findall(r"results/(table\w+\.csv)", front)) == {
        "table3.csv",
        "table3_long.csv",
    }
    (table3,) = read_html_tables(front)
    assert {"F1 july test", "F1 august test"} <= set(table3[0])
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html)[1])
    uri = results["results/maps/area_change.html"]["data_uri"]
    (change,) = read_html_tables(base64.b64decode(uri.split("base64,", 1)[1]).decode())
    assert len(change) - 1 == len(pd.read_csv(work / "results/maps/area_change.csv")) > 0
    uri = results["results/maps/glaciers.html"]["data_uri"]
    (glaciers,) = read_html_tables(base64.b64decode(uri.split("base64,", 1)[1]).decode())
    assert len(glaciers) - 1 == len(pd.read_csv(work / "results/maps/glaciers.csv")) > 0
