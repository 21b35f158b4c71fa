"""Threshold baseline: learns to separate bright ice from dark rock, maps a scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError
from glaciermap.evaluation.baseline import (
    FORMAT,
    Rule,
    band_features,
    fit_baseline,
    fit_rules,
    load_rules,
    predict_baseline,
)


def synthetic_scene(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(4, S, S) blue, green, red, nir: bright ice in the left half, dark rock elsewhere."""
    rng = np.random.default_rng(seed)
    ice = np.zeros((size, size), dtype=bool)
    ice[:, : size // 2] = True
    bands = np.where(ice, 0.7, 0.15) + rng.normal(0, 0.05, (4, size, size))
    bands[3] = np.where(ice, 0.5, 0.2) + rng.normal(0, 0.05, (size, size))  # nir
    return bands.astype(np.float32), ice


def test_fit_rules_separates_ice_from_rock():
    bands, ice = synthetic_scene()
    features = {k: v.ravel() for k, v in band_features(bands).items()}
    rules, f1 = fit_rules(features, ice.ravel())
    assert f1 > 0.95
    threshold = rules[0].threshold
    if rules[0].feature in ("blue", "green", "red"):
        assert rules[0].direction == ">=" and 0.2 < threshold < 0.65
    # the rules generalise to a second draw of the same scene
    other, other_ice = synthetic_scene(seed=1)
    predicted = np.ones(other_ice.shape, dtype=bool)
    for rule in rules:
        predicted &= rule.apply(band_features(other))
    assert (predicted == other_ice).mean() > 0.95


def test_fit_rules_refuses_no_glacier():
    bands, _ = synthetic_scene()
    features = {k: v.ravel() for k, v in band_features(bands).items()}
    with pytest.raises(ValueError, match="no glacier"):
        fit_rules(features, np.zeros(bands[0].size, dtype=bool))


def test_predict_baseline_writes_georeferenced_mask(tmp_path, geotiff):
    bands, ice = synthetic_scene()
    bands[:, 0, :4] = np.nan
    transform = from_origin(480000, 3100000, 30, 30)
    scene = geotiff(
        tmp_path / "scenes" / "oct2000.tif",
        bands,
        crs="EPSG:32645",
        transform=transform,
        nodata=np.nan,
        descriptions=("blue", "green", "red", "nir"),
        dtype="float32",
    )
    model = tmp_path / "baseline.json"
    rule = {"feature": "red", "direction": ">=", "threshold": 0.42}
    model.write_text(json.dumps({"format": FORMAT, "rules": [rule]}))
    out = tmp_path / "maps" / "baseline" / "mask.tif"
    predict_baseline(model, scene, out, block_rows=10)
    with rasterio.open(out) as src:
        assert src.transform == transform and src.crs.to_epsg() == 32645
        mask = src.read(1)
    assert (mask[0, :4] == 255).all()
    expected = (bands[2] >= 0.42).astype(np.uint8)
    assert (mask[1:] == expected[1:]).all()
    assert load_rules(model) == [Rule(**rule)]


def test_load_rules_names_bad_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other", "rules": []}))
    with pytest.raises(InputDataError, match="bad.json"):
        load_rules(bad)


def tile_set(seed: int) -> TileSet:
    """Four 32x32 tiles of the synthetic scene; one tile partly nodata (bands 0, mask 255)."""
    bands, ice = synthetic_scene(seed=seed)
    windows = [(r, c, 32, 32) for r in (0, 32) for c in (0, 32)]
    images = np.stack([bands[:, r : r + 32, c : c + 32] for r, c, _, _ in windows])
    masks = np.stack([ice[r : r + 32, c : c + 32] for r, c, _, _ in windows]).astype(np.uint8)
    images[0, :, :5] = 0
    masks[0, :5] = 255
    transform = np.array([30, 0, 0, 0, -30, 0])
    ranges = np.tile([[0.0, 1.0]], (4, 1))
    return TileSet(images, masks, np.array(windows), "EPSG:32645", transform, ranges)


def test_fit_baseline_from_tile_files(tmp_path):
    train, val = tmp_path / "train.npz", tmp_path / "val.npz"
    tile_set(0).save(train)
    tile_set(1).save(val)
    out = tmp_path / "baseline" / "thresholds.json"
    result = fit_baseline([train], out, val_tiles=[val])
    assert json.loads(out.read_text()) == result
    assert result["train_f1"] > 0.95 and result["val_f1"] > 0.95
    assert result["n_train_pixels"] == 4 * 32 * 32 - 5 * 32  # nodata rows left out
    assert load_rules(out)


def test_fit_baseline_names_tiles_without_glacier(tmp_path):
    tiles = tile_set(0)
    tiles.masks[tiles.masks == 1] = 0
    train = tmp_path / "train.npz"
    tiles.save(train)
    with pytest.raises(InputDataError, match="train.npz"):
        fit_baseline([train], tmp_path / "b.json")


def test_fit_baseline_samples_at_most_max_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr("glaciermap.evaluation.baseline.MAX_PIXELS", 1000)
    train = tmp_path / "train.npz"
    tile_set(0).save(train)
    result = fit_baseline([train, train], tmp_path / "b.json")
    assert result["n_train_pixels"] == 1000
    assert result["train_f1"] > 0.95 and result["val_f1"] is None


SIX = ["blue", "green", "red", "nir", "swir16", "swir22"]


def six_band_tiles(seed: int) -> tuple[TileSet, np.ndarray]:
    """Glacier pixels dark in SWIR relative to green: no band alone separates them,
    their NDSI does. Returns the tiles and the (6, 64, 64) scene they come from."""
    rng = np.random.default_rng(seed)
    ice = np.zeros((64, 64), bool)
    ice[10:40, 5:50] = True
    bands = rng.uniform(0.1, 0.9, (6, 64, 64)).astype(np.float32)
    bands[4] = bands[1] * np.where(ice, 0.2, 1.2)  # NDSI 0.67 on ice, -0.09 elsewhere
    windows = [(r, c, 32, 32) for r in (0, 32) for c in (0, 32)]
    images = np.stack([bands[:, r : r + 32, c : c + 32] for r, c, _, _ in windows])
    masks = np.stack([ice[r : r + 32, c : c + 32] for r, c, _, _ in windows]).astype(np.uint8)
    transform = np.array([30, 0, 0, 0, -30, 0])
    ranges = np.tile([[0.0, 1.0]], (6, 1))
    return TileSet(images, masks, np.array(windows), "EPSG:32645", transform, ranges), bands


def test_baseline_picks_ndsi_when_it_separates_best(tmp_path, geotiff):
    train, val = tmp_path / "train.npz", tmp_path / "val.npz"
    six_band_tiles(0)[0].save(train)
    six_band_tiles(1)[0].save(val)
    out = tmp_path / "thresholds.json"
    result = fit_baseline([train], out, val_tiles=[val], channels=SIX)
    assert result["bands"] == SIX and "ndsi" in result["features"]
    assert result["rules"][0]["feature"] == "ndsi"
    assert result["train_f1"] == 1.0 and result["val_f1"] > 0.99
    # Applied to a six-band scene it maps the ice; a four-band scene is refused.
    _, scene = six_band_tiles(2)
    scene_tif = geotiff(tmp_path / "scene.tif", scene, descriptions=SIX)
    predict_baseline(out, scene_tif, tmp_path / "mask.tif")
    with rasterio.open(tmp_path / "mask.tif") as dataset:
        assert dataset.read(1)[10:40, 5:50].all() and dataset.read(1).sum() == 30 * 45
    four = geotiff(tmp_path / "four.tif", scene[:4], descriptions=SIX[:4])
    with pytest.raises(InputDataError, match=r"expected 6 bands \(blue, green, red, nir, swir16"):
        predict_baseline(out, four, tmp_path / "no.tif")
