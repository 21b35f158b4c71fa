"""Figures: training curves and overlays are written, non-empty and readable PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from matplotlib.image import imread
from rasterio.transform import from_origin

from glaciermap.errors import InputDataError
from glaciermap.reporting.figures import figure_overlay, figure_training_curves, stretch

GRID = from_origin(480000, 3100000, 30, 30)


def write_metrics(root: Path, model: str, aug: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    epochs = [
        {
            "epoch": e,
            "train_loss": 0.7 / e + rng.uniform(0, 0.05),
            "val_loss": 0.8 / e + rng.uniform(0, 0.05),
            "train_f1": 1 - 0.5 / e,
            "val_f1": 1 - 0.6 / e - rng.uniform(0, 0.05),
        }
        for e in range(1, 6)
    ]
    run = {"model": model, "hparams": "h", "dates": "july+august", "aug": aug, "seed": seed}
    path = root / model / aug / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run": run, "epochs": epochs}))
    return path


def assert_png(path: Path) -> None:
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.01  # not a blank page


@pytest.mark.parametrize("group_by", ["model", "aug"])
def test_training_curves(tmp_path, group_by):
    files = [
        write_metrics(tmp_path, model, aug, seed)
        for model in ("fpn", "pspnet")
        for aug in ("noaug", "aug-concat")
        for seed in (1, 2)
    ]
    out = tmp_path / "figures" / f"curves_{group_by}.png"
    figure_training_curves(files, out, group_by=group_by)
    assert_png(out)


def write_raster(path: Path, array: np.ndarray, nodata: float | None) -> Path:
    array = array if array.ndim == 3 else array[None]
    profile = dict(
        driver="GTiff",
        width=array.shape[2],
        height=array.shape[1],
        count=array.shape[0],
        dtype=array.dtype.name,
        crs="EPSG:32645",
        transform=GRID,
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return path


def overlay_inputs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96]
    ice = ((yy - 40) ** 2 + (xx - 30) ** 2 < 300) | ((yy - 20) ** 2 + (xx - 75) ** 2 < 120)
    scene = np.where(ice, 0.7, 0.2) + rng.normal(0, 0.05, (4, 80, 96))
    scene[:, :3, :10] = np.nan
    probability = np.clip(ice * 0.8 + rng.normal(0.1, 0.1, ice.shape), 0, 1)
    regions = np.zeros(ice.shape, dtype=np.uint8)
    regions[:, :48] = 1
    regions[10:70, 50:90] = 3
    return {
        "scene_tif": write_raster(tmp_path / "scene.tif", scene.astype(np.float32), np.nan),
        "probability_tif": write_raster(
            tmp_path / "probability.tif", probability.astype(np.float32), np.nan
        ),
        "reference_tif": write_raster(tmp_path / "ref.tif", ice.astype(np.uint8), 255),
        "regions_tif": write_raster(tmp_path / "regions.tif", regions, 0),
    }


def test_overlay_figure(tmp_path):
    inputs = overlay_inputs(tmp_path)
    out = tmp_path / "overlay_test.png"
    figure_overlay(**inputs, out_png=out, region="test", title="test region, july")
    assert_png(out)
    # the mask variant, on the train region
    mask = write_raster(
        tmp_path / "mask.tif", (rasterio.open(inputs["reference_tif"]).read(1)), 255
    )
    figure_overlay(**inputs, out_png=tmp_path / "train.png", region="train", mask_tif=mask)
    assert_png(tmp_path / "train.png")


def test_overlay_refuses_missing_region(tmp_path):
    inputs = overlay_inputs(tmp_path)
    with pytest.raises(InputDataError, match="val region"):
        figure_overlay(**inputs, out_png=tmp_path / "x.png", region="val")


def test_stretch_clips_to_unit_range():
    rgb = np.stack([np.linspace(0, 100, 101)] * 3).reshape(3, 1, 101)
    out = stretch(rgb)
    assert out.min() == 0 and out.max() == 1 and out.shape == (1, 101, 3)
