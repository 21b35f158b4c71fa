"""Blended sliding-window prediction: tile layout, weights, blocks, nodata, padding."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from glaciermap.inference.maps import write_maps
from glaciermap.inference.scene import open_workflow_scene
from glaciermap.inference.sliding_window import (
    InferenceSettings,
    blend_weights,
    predict_blocks,
    tile_starts,
    tile_stride,
)

BANDS = ["blue", "green", "red", "nir"]
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)
GRID = {"crs": "EPSG:32645", "transform": TRANSFORM}  # keywords of the geotiff fixture


class ArraySource:
    """An in-memory BandSource."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.height, self.width = array.shape[1:]
        self.reads = []

    def read(self, window):
        self.reads.append((int(window.height), int(window.width)))
        r, c = int(window.row_off), int(window.col_off)
        return self.array[:, r : r + int(window.height), c : c + int(window.width)].copy()


class ConstantPredictor:
    tile_size = 32
    bands = BANDS

    def __init__(self, value: float = 0.7) -> None:
        self.value = value
        self.calls = 0

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert x.shape[1:] == (4, self.tile_size, self.tile_size)
        return torch.full((x.shape[0], self.tile_size, self.tile_size), self.value)


class PixelwisePredictor(ConstantPredictor):
    """sigmoid(blue - nir) per pixel: any tiling must give exactly this map."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x[:, 0] - x[:, 3])


class TileMeanPredictor(ConstantPredictor):
    """Depends on the whole tile, so a tile read at the wrong place changes the result."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=False)
        return torch.sigmoid(mean)[:, None, None].expand(-1, x.shape[2], x.shape[3]) * 1.0


def assemble(source, predictor, settings) -> np.ndarray:
    out = np.full((source.height, source.width), -1.0, np.float32)
    for window, block in predict_blocks(source, predictor, settings):
        r, c = int(window.row_off), int(window.col_off)
        assert out[r : r + block.shape[0], c : c + block.shape[1]].min() == -1  # no block twice
        out[r : r + block.shape[0], c : c + block.shape[1]] = block
    return out


def test_tile_starts_cover_any_length_and_end_on_the_edge():
    assert tile_starts(100, 32, 16)[-1] == 68
    assert tile_starts(96, 32, 32) == [0, 32, 64]
    assert tile_starts(20, 32, 16) == [0]
    assert tile_stride(32, 0.5) == 16 and tile_stride(32, 0.0) == 32


@pytest.mark.parametrize("kind", ["gaussian", "linear", "uniform"])
def test_blend_weights_positive_and_centred(kind):
    w = blend_weights(32, kind)
    assert w.shape == (32, 32) and w.min() > 0 and w.max() == pytest.approx(1.0)
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    if kind != "uniform":
        assert w[16, 16] > w[0, 16] > w[0, 0]


@pytest.mark.parametrize("kind", ["gaussian", "linear", "uniform"])
def test_constant_model_gives_constant_map_without_seams(kind):
    rng = np.random.default_rng(0)
    source = ArraySource(rng.random((4, 101, 75), dtype=np.float32))
    settings = InferenceSettings(overlap=0.5, window=kind, batch_size=5, block_size=40)
    out = assemble(source, ConstantPredictor(0.7), settings)
    assert np.allclose(out, 0.7, atol=1e-6)


def test_pixelwise_model_is_reproduced_exactly_by_the_blend():
    rng = np.random.default_rng(1)
    array = rng.normal(size=(4, 90, 70)).astype(np.float32)
    expected = 1 / (1 + np.exp(-(array[0] - array[3])))
    out = assemble(
        ArraySource(array), PixelwisePredictor(), InferenceSettings(0.25, "gaussian", 3, 33)
    )
    assert np.allclose(out, expected, atol=1e-5)


def test_blocks_do_not_change_the_result_and_bound_the_reads():
    rng = np.random.default_rng(2)
    array = rng.normal(size=(4, 130, 110)).astype(np.float32)
    whole = assemble(
        ArraySource(array), TileMeanPredictor(), InferenceSettings(0.5, "linear", 8, 4096)
    )
    blocked_source = ArraySource(array)
    blocked = assemble(blocked_source, TileMeanPredictor(), InferenceSettings(0.5, "linear", 8, 40))
    assert np.allclose(whole, blocked, atol=1e-6)
    # each read is one block plus a halo of less than one tile on each side
    assert max(max(h, w) for h, w in blocked_source.reads) < 40 + 2 * 32


def test_nodata_stays_nodata_and_all_nodata_tiles_are_skipped():
    array = np.ones((4, 64, 128), np.float32)
    array[:, :, 64:] = np.nan  # right half: no data at all
    array[2, 5, 5] = np.nan  # one band missing at one pixel
    predictor = ConstantPredictor(0.3)
    out = assemble(ArraySource(array), predictor, InferenceSettings(0.0, "gaussian", 1, 4096))
    assert np.isnan(out[:, 64:]).all() and np.isnan(out[5, 5])
    assert np.isfinite(out[:, :64]).sum() == 64 * 64 - 1
    assert predictor.calls == 4  # the 4 tiles of the left half, none of the right


def test_scene_smaller_than_a_tile_is_padded_and_keeps_its_shape():
    array = np.random.default_rng(3).normal(size=(4, 20, 13)).astype(np.float32)
    out = assemble(ArraySource(array), PixelwisePredictor(), InferenceSettings())
    assert out.shape == (20, 13)
    assert np.allclose(out, 1 / (1 + np.exp(-(array[0] - array[3]))), atol=1e-5)


def test_written_maps_keep_grid_and_are_cloud_optimized(tmp_path, geotiff):
    array = np.random.default_rng(4).random((4, 70, 90), dtype=np.float32)
    array[:, :3, :3] = np.nan
    scene = geotiff(tmp_path / "scene.tif", array, **GRID, nodata=np.nan, descriptions=BANDS)
    with open_workflow_scene(scene, BANDS) as source:
        summary = write_maps(
            source,
            ConstantPredictor(0.6),
            tmp_path / "p.tif",
            tmp_path / "m.tif",
            InferenceSettings(0.5, "gaussian", 4, 256),
            threshold=0.5,
        )
    assert summary.valid_pixels == 70 * 90 - 9 and summary.glacier_pixels == summary.valid_pixels
    with (
        rasterio.open(scene) as ref,
        rasterio.open(tmp_path / "p.tif") as p,
        rasterio.open(tmp_path / "m.tif") as m,
    ):
        for out in (p, m):
            assert (out.crs, out.transform, out.shape) == (ref.crs, ref.transform, ref.shape)
            assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert out.compression is not None
        prob, mask = p.read(1), m.read(1)
    assert np.isnan(prob[:3, :3]).all() and (mask[:3, :3] == 255).all()
    assert np.allclose(prob[3:, 3:], 0.6, atol=1e-6) and (mask[3:, 3:] == 1).all()
    assert not list(tmp_path.glob(".*"))  # no temporary or staging file left behind


def test_a_failure_mid_scene_leaves_no_output(tmp_path, geotiff):
    class FailingPredictor(ConstantPredictor):
        def predict_proba(self, x):
            if self.calls == 2:  # the third batch, after two blocks were written
                raise RuntimeError("out of memory")
            return super().predict_proba(x)

    ones = np.ones((4, 96, 96), np.float32)
    scene = geotiff(tmp_path / "scene.tif", ones, **GRID, nodata=np.nan, descriptions=BANDS)
    with open_workflow_scene(scene, BANDS) as source, pytest.raises(RuntimeError):
        write_maps(
            source,
            FailingPredictor(),
            tmp_path / "p.tif",
            tmp_path / "m.tif",
            InferenceSettings(0.0, "uniform", 1, 32),
            threshold=0.5,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
