"""The overlay and change figures grey out what a date did not observe, and the
change figure states its areas over the area observed on both dates.

The checks read what the figures plotted (the image arrays of their axes), at
the pixels the test made cloudy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glaciermap.areas.change_figure import UNOBSERVED, change_figure
from glaciermap.io.validity import MASKED, NO_DATA, VALID
from glaciermap.reporting.figures import UNOBSERVED_GREY, figure_overlay

CRS = "EPSG:32645"
TRANSFORM = Affine(30.0, 0, 478000.0, 0, -30.0, 3108140.0)
H, W = 60, 80
PIXEL_KM2 = 0.03 * 0.03


def write(path: Path, array: np.ndarray, dtype: str, nodata=None) -> Path:
    array = array if array.ndim == 3 else array[None]
    with rasterio.open(
        path, "w", driver="GTiff", width=W, height=H, count=array.shape[0], dtype=dtype,
        crs=CRS, transform=TRANSFORM, nodata=nodata,
    ) as out:  # fmt: skip
        out.write(array.astype(dtype))
    return path


@pytest.fixture
def scene_files(tmp_path):
    rng = np.random.default_rng(0)
    scene = rng.random((4, H, W)).astype(np.float32)
    validity = np.full((H, W), VALID, np.uint8)
    validity[10:25, 30:50] = MASKED  # a cloud
    validity[:, :4] = NO_DATA
    scene[:, validity != VALID] = np.nan
    before = np.zeros((H, W), np.uint8)
    before[5:50, 10:60] = 1
    after = before.copy()
    after[30:50, 10:60] = 0  # retreat, partly seen
    after[validity != VALID] = 255
    regions = np.full((H, W), 3, np.uint8)
    return {
        "scene": write(tmp_path / "scene.tif", scene, "float32", float("nan")),
        "validity_a": write(tmp_path / "valid_a.tif", np.full((H, W), VALID), "uint8"),
        "validity_b": write(tmp_path / "valid_b.tif", validity, "uint8"),
        "before": write(tmp_path / "a.tif", before, "uint8", 255),
        "after": write(tmp_path / "b.tif", after, "uint8", 255),
        "probability": write(tmp_path / "p.tif", np.where(after == 1, 0.9, 0.1), "float32", None),
        "regions": write(tmp_path / "regions.tif", regions, "uint8"),
        "unseen": validity != VALID,
        "masks": (before, after),
    }


def test_change_figure_greys_out_and_measures_over_the_common_area(tmp_path, scene_files):
    files = scene_files
    figure = change_figure(
        files["scene"],
        [files["before"], files["after"]],
        ["july", "august"],
        tmp_path / "change.png",
        validity=[files["validity_a"], files["validity_b"]],
    )
    axes = figure.axes[0]
    overlay = np.asarray(axes.images[1].get_array())
    unseen = files["unseen"]
    np.testing.assert_allclose(overlay[unseen], np.tile(UNOBSERVED, (unseen.sum(), 1)))
    before, after = files["masks"]
    lost = (before == 1) & (after == 0) & ~unseen
    assert lost.any() and (overlay[lost][:, 0] > 0.8).all()  # red where the loss was seen
    assert not (overlay[~unseen & ~lost] != 0).any()  # nothing else drawn
    common = (~unseen).sum() * PIXEL_KM2
    area_before = ((before == 1) & ~unseen).sum() * PIXEL_KM2
    area_after = ((after == 1) & ~unseen).sum() * PIXEL_KM2
    title = axes.get_title()
    assert f"july: {area_before:.2f} km²" in title and f"august: {area_after:.2f} km²" in title
    assert f"over the {common:.2f} km² observed on both dates" in title
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "not observed (cloud, shadow, no data)" in labels


@pytest.mark.parametrize("with_validity", [True, False])
def test_overlay_greys_out_unobserved_pixels(tmp_path, scene_files, with_validity):
    files = scene_files
    figure = figure_overlay(
        files["scene"],
        files["probability"],
        files["before"],
        files["regions"],
        tmp_path / "overlay.png",
        mask_tif=files["after"],
        validity_tif=files["validity_b"] if with_validity else None,
    )
    unseen = files["unseen"]
    rgb = np.asarray(figure.axes[1].images[0].get_array())
    np.testing.assert_allclose(rgb[unseen], np.tile(UNOBSERVED_GREY, (unseen.sum(), 1)))
    assert not np.isclose(rgb[~unseen], UNOBSERVED_GREY).all(axis=1).all()
    probability = figure.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(probability), unseen)
    legend = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert f"not observed ({unseen.mean():.0%}: cloud, shadow, no data)" in legend
