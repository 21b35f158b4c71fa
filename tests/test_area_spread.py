"""Error bars of areas: a seed ensemble's rows carry its members' spread and the area its
members disagree on, in the area and the change tables, and the change figure marks it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from test_inference_outlines_areas import away_from_edges, pixel_centres

from glaciermap.areas import change_figure as change_figure_module
from glaciermap.areas.area_tables import write_area_tables
from glaciermap.areas.change_figure import change_figure

TRANSFORM = Affine(30.0, 0.0, 478000.0, 0.0, -30.0, 3108140.0)
GRID = {"crs": "EPSG:32645", "transform": TRANSFORM}
PIXEL_KM2 = 30.0 * 30.0 / 1e6
RUNS = [f"fpn/dropout0.4-softmax-mean/a+b/noaug/seed{s}" for s in (1, 2, 3)]
ENSEMBLE = "ensemble/fpn/dropout0.4-softmax-mean/a+b/noaug"


def member_masks(date: str) -> list[np.ndarray]:
    """Three members that agree on a core and differ at one glacier's front."""
    shrink = {"a": 0, "b": 6}[date]
    masks = []
    for extra in (0, 4, 10):
        mask = np.zeros((40, 60), np.uint8)
        mask[5 : 30 - shrink, 5 : 25 + extra] = 1
        masks.append(mask)
    return masks


@pytest.fixture
def tables(tmp_path, geotiff):
    maps = []
    for date in ("a", "b"):
        members = member_masks(date)
        for run, mask in zip(RUNS, members, strict=True):
            path = geotiff(tmp_path / date / f"{run[-5:]}.tif", mask, **GRID, nodata=255)
            maps.append({"run": run, "date": date, "mask": str(path)})
        votes = np.mean(members, axis=0)
        ensemble_mask = (votes >= 0.5).astype(np.uint8)
        uncertainty = np.std(members, axis=0).astype(np.float32)  # 0 or 0.47 here
        maps.append(
            {
                "run": ENSEMBLE,
                "date": date,
                "mask": str(geotiff(tmp_path / date / "ens.tif", ensemble_mask, **GRID,
                                    nodata=255)),
                "uncertainty": str(geotiff(tmp_path / date / "unc.tif", uncertainty, **GRID,
                                           nodata=float("nan"))),
                "members": RUNS,
            }
        )  # fmt: skip
    reference = {d: str(geotiff(tmp_path / f"ref_{d}.tif", member_masks(d)[0], **GRID,
                                nodata=255)) for d in ("a", "b")}  # fmt: skip
    write_area_tables(maps, reference, ["a", "b"], tmp_path / "areas.csv",
                      tmp_path / "change.csv", uncertainty_threshold=0.2)  # fmt: skip
    return pd.read_csv(tmp_path / "areas.csv"), pd.read_csv(tmp_path / "change.csv")


def scene_row(table: pd.DataFrame, run: str, **where: str) -> pd.Series:
    rows = table[(table["run"] == run) & (table["zone_type"] == "scene")]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1
    return rows.iloc[0]


def test_ensemble_rows_carry_the_spread_of_their_members(tables):
    areas, _ = tables
    for date in ("a", "b"):
        member = [scene_row(areas, run, date=date)["area_km2"] for run in RUNS]
        expected = [int(m.sum()) * PIXEL_KM2 for m in member_masks(date)]
        assert member == pytest.approx(expected)
        ensemble = scene_row(areas, ENSEMBLE, date=date)
        assert ensemble["members"] == 3
        assert ensemble["member_min_km2"] == pytest.approx(min(member))
        assert ensemble["member_max_km2"] == pytest.approx(max(member))
        assert ensemble["member_std_km2"] == pytest.approx(np.std(member, ddof=1), abs=1e-6)
        # The ensemble (majority) area lies within its members' range.
        assert min(member) <= ensemble["area_km2"] <= max(member)
        # Uncertain: where one member differs from the others (std 0.47 > 0.2).
        members = np.array(member_masks(date))
        disagree = (members.min(axis=0) != members.max(axis=0)).sum()
        assert ensemble["uncertain_km2"] == pytest.approx(disagree * PIXEL_KM2)
    single = scene_row(areas, RUNS[0], date="a")
    assert np.isnan(single["member_std_km2"]) and np.isnan(single["uncertain_km2"])


def test_change_rows_carry_the_spread_of_the_members_changes(tables):
    _, change = tables
    changes = [scene_row(change, run)["change_km2"] for run in RUNS]
    ensemble = scene_row(change, ENSEMBLE)
    assert ensemble["members"] == 3
    assert ensemble["member_min_change_km2"] == pytest.approx(min(changes))
    assert ensemble["member_max_change_km2"] == pytest.approx(max(changes))
    assert ensemble["member_std_change_km2"] == pytest.approx(np.std(changes, ddof=1), abs=1e-6)


def test_change_figure_marks_where_the_members_disagree(tmp_path, geotiff, png_at):
    grey = np.full((40, 60), 0.3)
    scene = geotiff(tmp_path / "scene.tif", np.stack([grey] * 4), **GRID, dtype="float32")
    mask = np.zeros((40, 60), np.uint8)
    mask[5:30, 5:30] = 1
    uncertainty = np.zeros((40, 60), np.float32)
    uncertainty[10:20, 35:55] = 0.4  # disagreement off the glacier
    masks = [geotiff(tmp_path / f"{d}.tif", mask, **GRID, nodata=255) for d in ("a", "b")]
    spread = [geotiff(tmp_path / f"u{d}.tif", uncertainty, **GRID) for d in ("a", "b")]
    out = tmp_path / "fig.png"
    figure = change_figure(scene, masks, ["a", "b"], out, uncertainty=spread)
    clear = away_from_edges(uncertainty > 0.2, mask)
    rgb = png_at(out, figure.axes[0], pixel_centres(clear), change_figure_module.DPI)
    shown = np.isfinite(rgb[:, 0])
    magenta = (rgb[:, 0] > rgb[:, 1] + 0.3) & (rgb[:, 2] > rgb[:, 1] + 0.3)
    marked = (uncertainty > 0.2)[clear]
    assert magenta[shown & marked].all() and not magenta[shown & ~marked].any()
    assert any("uncertain" in text.get_text() for text in figure.axes[0].get_legend().texts)
