"""Figures: what the training curves and overlays show, read back from the returned
matplotlib Figure and from the saved PNG's pixels."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from rasterio.transform import from_origin
from scipy.ndimage import maximum_filter, minimum_filter

from glaciermap.errors import InputDataError
from glaciermap.reporting import figures
from glaciermap.reporting.figures import figure_overlay, figure_training_curves, stretch

GRID = {"crs": "EPSG:32645", "transform": from_origin(480000, 3100000, 30, 30)}
SHAPE = (80, 96)
TEST_ROWS, TEST_COLS = slice(10, 70), slice(50, 90)  # the test region's box


def write_metrics(root: Path, model: str, aug: str, seed: int) -> Path:
    rng = np.random.default_rng([seed, len(model), len(aug)])  # each run its own noise
    epochs = [
        {
            "epoch": e,
            "train_loss": 0.7 / e + rng.uniform(0, 0.05),
            "val_loss": 0.8 / e + rng.uniform(0, 0.05),
            "train_f1": 1 - 0.5 / e,  # the same for every seed: no band
            "val_f1": 1 - 0.6 / e - rng.uniform(0, 0.05),
        }
        for e in range(1, 6)
    ]
    run = {"model": model, "hparams": "h", "dates": "july+august", "aug": aug, "seed": seed}
    path = root / model / aug / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run": run, "epochs": epochs}))
    return path


def assert_is_the_saved_figure(png: Path, figure, dpi: float) -> None:
    width, height = figure.get_size_inches() * dpi
    assert imread(png).shape[:2] == (round(height), round(width))


@pytest.mark.parametrize(
    ("group_by", "labels"),
    [
        ("model", {"fpn": "FPN", "pspnet": "PSPNet"}),
        ("aug", {"noaug": "no augmentation", "aug-concat": "augmented copies added"}),
    ],
)
def test_training_curves_plot_each_groups_mean_and_range_over_its_runs(tmp_path, group_by, labels):
    files = [
        write_metrics(tmp_path, model, aug, seed)
        for model in ("fpn", "pspnet")
        for aug in ("noaug", "aug-concat")
        for seed in (1, 2)
    ]
    runs = [json.loads(path.read_text()) for path in files]
    out = tmp_path / "figures" / f"curves_{group_by}.png"
    figure = figure_training_curves(files, out, group_by=group_by)
    assert_is_the_saved_figure(out, figure, figures.DPI)

    # One legend entry per group (then the line/band key), each its own colour.
    legend = figure.legends[0]
    entries = [t.get_text() for t in legend.texts]
    assert entries[:-1] == list(labels.values())
    colours = {
        text: to_rgb(handle.get_color())
        for text, handle in zip(entries[:-1], legend.legend_handles, strict=False)
    }
    assert len(set(colours.values())) == len(labels)
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert set(panels) == {title for _, title in figures.PANELS}
    for key, title in figures.PANELS:
        ax = panels[title]
        assert len(ax.lines) == len(labels), title
        for group, label in labels.items():
            # (runs, epochs) values of this group: 2 other-field values x 2 seeds
            values = np.array(
                [[e[key] for e in r["epochs"]] for r in runs if r["run"][group_by] == group]
            )
            assert values.shape == (4, 5)
            (line,) = [ln for ln in ax.lines if to_rgb(ln.get_color()) == colours[label]]
            np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4, 5])
            np.testing.assert_allclose(line.get_ydata(), values.mean(axis=0), rtol=1e-12)
            bands = [b for b in ax.collections if to_rgb(b.get_facecolor()[0]) == colours[label]]
            if np.ptp(values, axis=0).any():
                (band,) = bands
                vertices = band.get_paths()[0].vertices
                for epoch, low, high in zip(
                    range(1, 6), values.min(axis=0), values.max(axis=0), strict=True
                ):
                    ys = vertices[np.isclose(vertices[:, 0], epoch), 1]
                    assert ys.min() == pytest.approx(low) and ys.max() == pytest.approx(high)
            else:
                assert not bands, f"{title}: a band for {label} although its runs agree"


def overlay_inputs(tmp_path: Path, geotiff) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """Rasters where it is known what each figure pixel shows; and the arrays."""
    ramp = np.add.outer(np.arange(SHAPE[0]) / 400, np.arange(SHAPE[1]) / 96)
    scene = np.stack([ramp] * 4).astype(np.float32)  # grey: all bands equal
    scene[:, :3, :10] = np.nan  # outside the test region
    mask = np.zeros(SHAPE, np.uint8)  # an L, and a block across the region's top edge
    mask[20:40, 55:85] = 1
    mask[40:60, 55:65] = 1
    mask[5:15, 70:80] = 1
    probability = np.full(SHAPE, 0.1, np.float32)  # elsewhere than the mask
    probability[50:65, 70:88] = 0.9
    reference = np.zeros(SHAPE, np.uint8)
    reference[25:55, 60:80] = 1
    regions = np.zeros(SHAPE, np.uint8)
    regions[:, :48] = 1
    regions[TEST_ROWS, TEST_COLS] = 3
    arrays = {"mask": mask, "probability": probability, "reference": reference}
    paths = {
        "scene_tif": geotiff(tmp_path / "scene.tif", scene, **GRID, nodata=np.nan),
        "probability_tif": geotiff(tmp_path / "p.tif", probability, **GRID, nodata=np.nan),
        "reference_tif": geotiff(tmp_path / "ref.tif", reference, **GRID, nodata=255),
        "regions_tif": geotiff(tmp_path / "regions.tif", regions, **GRID, nodata=0),
    }
    geotiff(tmp_path / "mask.tif", mask, **GRID, nodata=255)
    return paths, arrays


@pytest.mark.parametrize("red_from", ["mask", "threshold"])
def test_overlay_shows_the_prediction_as_a_light_fill_and_outline_where_it_is_on_the_map(
    tmp_path, geotiff, png_at, red_from
):
    inputs, arrays = overlay_inputs(tmp_path, geotiff)
    mask_tif = tmp_path / "mask.tif" if red_from == "mask" else None
    out = tmp_path / "overlay.png"
    figure = figure_overlay(**inputs, out_png=out, region="test", mask_tif=mask_tif)
    assert_is_the_saved_figure(out, figure, figures.DPI)
    probability_axes, rgb_axes = figure.axes[:2]

    # Both panels show the test region's box, in km of the scene's CRS.
    transform = GRID["transform"]
    left, top = transform @ (TEST_COLS.start, TEST_ROWS.start)
    right, bottom = transform @ (TEST_COLS.stop, TEST_ROWS.stop)
    for axes in (probability_axes, rgb_axes):
        assert axes.get_xlim() == pytest.approx((left / 1000, right / 1000))
        assert axes.get_ylim() == pytest.approx((bottom / 1000, top / 1000))
        assert "EPSG:32645" in axes.get_xlabel() and "km" in axes.get_xlabel()

    # Every pixel of the region, but those along the reference outline (drawn on top).
    reference = arrays["reference"]
    clear = minimum_filter(reference, 3) == maximum_filter(reference, 3)
    inside = np.zeros(SHAPE, bool)
    inside[TEST_ROWS, TEST_COLS] = True
    rows, cols = np.nonzero(inside & clear)
    centres = np.column_stack(transform @ (cols + 0.5, rows + 0.5)) / 1000

    rgb = png_at(out, rgb_axes, centres, figures.DPI)
    shown = np.isfinite(rgb[:, 0])
    assert shown.mean() > 0.8  # the legend covers a corner only
    predicted = arrays["mask"] == 1 if red_from == "mask" else arrays["probability"] >= 0.5
    expected = predicted[rows, cols][shown]
    redness = (rgb[:, 0] - rgb[:, 1:].max(axis=1))[shown]  # none on the grey image
    assert expected.any() and not expected.all()
    # a light fill over the grey image: its redness, the image still seen through it
    fill = figures.PREDICTED_FILL
    np.testing.assert_allclose(redness[expected], fill[3] * (fill[0] - fill[1]), atol=0.02)
    assert (np.abs(redness[~expected]) < 0.02).all()
    # the predicted glacier's outline runs along the edges between glacier and not
    outline = figures.PREDICTED_LINE[:3]
    (line,) = [c for c in rgb_axes.collections if to_rgb(c.get_edgecolor()[0]) == outline]
    line_cols, line_rows = ~transform @ tuple(line.get_paths()[0].vertices.T * 1000)
    assert len(line_cols) > 10
    for col, row in zip(line_cols, line_rows, strict=True):
        block = predicted[
            int(np.floor(row - 0.5)) : int(np.ceil(row - 0.5)) + 1,
            int(np.floor(col - 0.5)) : int(np.ceil(col - 0.5)) + 1,
        ]
        assert block.any() and not block.all()

    # a scale bar and the EPSG code on both panels
    for axes in (probability_axes, rgb_axes):
        assert any(" km" in t.get_text() for t in axes.findobj(matplotlib.text.Text))

    # The left panel is the probability in magma.
    left_rgb = png_at(out, probability_axes, centres, figures.DPI)
    magma = matplotlib.colormaps["magma"](arrays["probability"][rows, cols])[:, :3]
    np.testing.assert_allclose(left_rgb, magma, atol=0.02)


def test_overlay_refuses_missing_region(tmp_path, geotiff):
    inputs, _ = overlay_inputs(tmp_path, geotiff)
    with pytest.raises(InputDataError, match="val region"):
        figure_overlay(**inputs, out_png=tmp_path / "x.png", region="val")


def test_stretch_clips_to_unit_range():
    rgb = np.stack([np.linspace(0, 100, 101)] * 3).reshape(3, 1, 101)
    out = stretch(rgb)
    assert out.min() == 0 and out.max() == 1 and out.shape == (1, 101, 3)
