"""Blended sliding-window prediction: window layout, weights, blocks, batches, nodata, padding."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from glaciermap.data.tiling import covering_starts
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.inference.maps import MapPaths, write_maps
from glaciermap.inference.scene import open_workflow_scene
from glaciermap.inference.settings import InferenceSettings
from glaciermap.inference.sliding_window import predict_blocks
from glaciermap.inference.windows import axis_window, blend_weights, plan_windows

BANDS = ["blue", "green", "red", "nir"]
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)
GRID = {"crs": "EPSG:32645", "transform": TRANSFORM}  # keywords of the geotiff fixture


class ArraySource:
    """An in-memory BandSource that records its reads."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.height, self.width = array.shape[1:]
        self.reads = []

    def read(self, window):
        self.reads.append((int(window.height), int(window.width)))
        r, c = int(window.row_off), int(window.col_off)
        return self.array[:, r : r + int(window.height), c : c + int(window.width)].copy()


class ConstantPredictor:
    bands = BANDS
    tile_size = 64  # the training tile: the default window

    def __init__(self, value: float = 0.7) -> None:
        self.value = value
        self.calls = 0
        self.shapes = set()

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.shapes.add(tuple(x.shape[1:]))
        return torch.full((x.shape[0], *x.shape[2:]), self.value)


class PixelwisePredictor(ConstantPredictor):
    """sigmoid(blue - nir) per pixel: any tiling must give exactly this map."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        super().predict_proba(x)
        return torch.sigmoid(x[:, 0] - x[:, 3])


class WindowMeanPredictor(ConstantPredictor):
    """Depends on the whole window, so a window read or added at the wrong place shows."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        super().predict_proba(x)
        mean = x.mean(dim=(1, 2, 3))
        return torch.sigmoid(mean)[:, None, None].expand(-1, x.shape[2], x.shape[3]) * 1.0


def pixelwise(array: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(array[0].astype(np.float64) - array[3])))


def assemble(source, predictors, settings) -> np.ndarray:
    """Put the yielded blocks together; each pixel exactly once."""
    out = np.full((len(predictors), source.height, source.width), -1.0, np.float32)
    for block in predict_blocks(source, predictors, settings):
        r, c = int(block.window.row_off), int(block.window.col_off)
        h, w = block.probabilities.shape[1:]
        assert (out[:, r : r + h, c : c + w] == -1).all()  # no pixel twice
        out[:, r : r + h, c : c + w] = block.probabilities
    assert not (out == -1).any()  # every pixel once
    return out[0] if len(predictors) == 1 else out


@pytest.mark.parametrize(
    ("length", "window", "margin", "size", "count"),
    [
        (2048, 512, 64, 480, 5),
        (10980, 512, 64, 512, 25),
        (2048, 1024, 64, 736, 3),
        (500, 512, 64, 512, 1),
    ],
)
def test_windows_shrink_to_cover_an_axis_with_the_fewest_windows(
    length, window, margin, size, count
):
    assert axis_window(length, window, margin) == size
    starts = covering_starts(length, size, size - margin)
    assert len(starts) == count and starts[-1] + size == max(length, size)
    overlaps = [b + size - a for a, b in zip(starts[1:], starts, strict=False)]
    assert all(overlap >= margin for overlap in overlaps)


def test_plan_puts_each_window_in_one_block_and_blocks_tile_the_scene():
    plan = plan_windows(1000, 700, InferenceSettings(window=256, margin=32, block_size=500))
    assert (plan.window_height, plan.window_width) == (256, 256)
    starts = covering_starts(1000, 256, 224)
    assert starts == [0, 224, 448, 672, 744]
    windows = [(b.top + r, b.left + c) for b in plan.blocks for r, c in b.windows]
    assert len(windows) == len(set(windows)) == plan.n_windows == 5 * 3
    covered = np.zeros((1000, 700), int)
    for b in plan.blocks:
        covered[b.top : b.bottom, b.left : b.right] += 1
        assert b.extent_bottom <= 1000 and b.extent_right <= 700
    assert (covered == 1).all()
    # a scene axis shorter than a window: one window, rounded up to a multiple of 32
    small = plan_windows(40, 700, InferenceSettings(window=256, margin=32))
    assert (small.window_height, small.window_width) == (64, 256)


@pytest.mark.parametrize("kind", ["gaussian", "linear", "uniform"])
def test_blend_weights_positive_and_centred(kind):
    w = blend_weights(64, 64, 16, kind)
    assert w.shape == (64, 64) and w.min() > 0 and w.max() == pytest.approx(1.0)
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    if kind != "uniform":
        assert w[32, 32] == w[16, 32] == 1.0  # flat inside the margin
        assert w[16, 32] > w[8, 32] > w[0, 32] > w[0, 0]


def test_half_window_margin_gives_the_whole_window_gaussian_and_tent():
    """margin = window / 2 reproduces the blending of overlap 0.5 (sigma = tile / 4, tent)."""
    centres = np.arange(64) + 0.5
    gaussian = np.exp(-((centres - 32) ** 2) / (2 * 16.0**2))
    tent = 1 - np.abs(2 * centres / 64 - 1)
    for kind, line in (("gaussian", gaussian), ("linear", tent)):
        expected = np.outer(line, line)
        assert np.allclose(blend_weights(64, 64, 32, kind), expected / expected.max(), atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "linear", "uniform"])
def test_constant_model_gives_constant_map_without_seams(kind):
    rng = np.random.default_rng(0)
    source = ArraySource(rng.random((4, 101, 75), dtype=np.float32))
    settings = InferenceSettings(window=32, margin=16, blend=kind, batch_size=5, block_size=40)
    out = assemble(source, [ConstantPredictor(0.7)], settings)
    assert np.allclose(out, 0.7, atol=1e-6)


def test_large_windows_equal_blended_small_windows_for_a_pointwise_model():
    """Where every window sees the same context (a pointwise model), window size and
    margin do not change the map: large windows reproduce small blended ones."""
    rng = np.random.default_rng(1)
    array = rng.normal(size=(4, 300, 230)).astype(np.float32)
    small = assemble(
        ArraySource(array),
        [PixelwisePredictor()],
        InferenceSettings(window=32, margin=16, batch_size=7, block_size=64),
    )
    large = assemble(
        ArraySource(array),
        [PixelwisePredictor()],
        InferenceSettings(window=128, margin=32, batch_size=3, block_size=100),
    )
    assert np.abs(large - small).max() < 1e-6
    assert np.abs(large - pixelwise(array)).max() < 1e-6


@pytest.mark.parametrize(("block_size", "batch_size"), [(40, 1), (64, 3), (100, 7)])
def test_blocks_and_batches_do_not_change_the_result(block_size, batch_size):
    """A model that sees its whole window: the sums carried across block edges are exact."""
    rng = np.random.default_rng(2)
    array = rng.normal(size=(4, 230, 190)).astype(np.float32)
    array[:, 100:140, 60:100] = np.nan  # nodata across block edges
    one_block = assemble(
        ArraySource(array),
        [WindowMeanPredictor()],
        InferenceSettings(window=64, margin=24, blend="linear", block_size=4096),
    )
    source = ArraySource(array)
    blocked = assemble(
        source,
        [WindowMeanPredictor()],
        InferenceSettings(
            window=64, margin=24, blend="linear", batch_size=batch_size, block_size=block_size
        ),
    )
    assert np.array_equal(np.isnan(blocked), np.isnan(one_block))
    assert np.nanmax(np.abs(blocked - one_block)) < 1e-6
    assert len(np.unique(one_block[np.isfinite(one_block)])) > 100  # the windows differ
    # each read is one block's windows: its stride-rounded size plus one margin
    assert max(max(h, w) for h, w in source.reads) <= block_size + 40 + 24


def test_batches_fill_across_block_edges():
    """Batches are not cut at block edges: forward passes = ceil(windows / batch)."""
    array = np.ones((4, 200, 200), np.float32)
    settings = InferenceSettings(window=32, margin=8, batch_size=5, block_size=48)
    plan = plan_windows(200, 200, settings)
    assert len(plan.blocks) > 4 and plan.n_windows % 5 != 0
    predictor = ConstantPredictor()
    assemble(ArraySource(array), [predictor], settings)
    assert predictor.calls == -(-plan.n_windows // 5)


def test_nodata_stays_nodata_and_all_nodata_windows_are_skipped():
    array = np.ones((4, 64, 128), np.float32)
    array[:, :, 64:] = np.nan  # right half: no data at all
    array[2, 5, 5] = np.nan  # one band missing at one pixel
    predictor = ConstantPredictor(0.3)
    out = assemble(
        ArraySource(array), [predictor], InferenceSettings(window=32, margin=0, batch_size=1)
    )
    assert np.isnan(out[:, 64:]).all() and np.isnan(out[5, 5])
    assert np.isfinite(out[:, :64]).sum() == 64 * 64 - 1
    assert predictor.calls == 4  # the 4 windows of the left half, none of the right


def test_scene_smaller_than_a_window_is_padded_and_keeps_its_shape():
    array = np.random.default_rng(3).normal(size=(4, 20, 45)).astype(np.float32)
    predictor = PixelwisePredictor()
    out = assemble(ArraySource(array), [predictor], InferenceSettings())
    assert out.shape == (20, 45) and predictor.shapes == {(4, 32, 64)}
    assert np.allclose(out, pixelwise(array), atol=1e-6)


def test_by_default_windows_are_the_training_tile_blended_over_a_quarter():
    """Models with global pooling trained on small tiles change on larger windows
    (README "Maps"), so the default window is the checkpoint's tile."""
    resolved = InferenceSettings().for_tile(128)
    assert (resolved.window, resolved.margin, resolved.batch_size) == (128, 32, 64)
    assert InferenceSettings(window=512).for_tile(128).margin == 128
    array = np.random.default_rng(4).normal(size=(4, 150, 200)).astype(np.float32)
    predictor = PixelwisePredictor()
    assemble(ArraySource(array), [predictor], InferenceSettings())
    assert predictor.shapes == {(4, 64, 64)}
    other = PixelwisePredictor()
    other.tile_size = 128
    with pytest.raises(InputDataError, match="tiles of \\[64, 128\\] px"):
        assemble(ArraySource(array), [predictor, other], InferenceSettings())


def test_every_member_predicts_every_window_from_one_read():
    array = np.random.default_rng(5).normal(size=(4, 150, 120)).astype(np.float32)
    settings = InferenceSettings(window=64, margin=16, batch_size=4, block_size=64)
    single_source, ensemble_source = ArraySource(array), ArraySource(array)
    single = assemble(single_source, [PixelwisePredictor()], settings)
    members = [PixelwisePredictor(), ConstantPredictor(0.2), WindowMeanPredictor()]
    ensemble = assemble(ensemble_source, members, settings)
    assert ensemble_source.reads == single_source.reads  # the scene is read once
    assert np.array_equal(ensemble[0], single)
    assert np.allclose(ensemble[1], 0.2)
    assert len({m.calls for m in members}) == 1


def test_prepare_is_called_once_per_scene_before_any_window():
    class Preparing(PixelwisePredictor):
        prepared = None

        def prepare(self, source):
            assert self.calls == 0
            self.prepared = (self.prepared or 0) + 1
            self.seen = source

    array = np.zeros((4, 100, 100), np.float32)
    source = ArraySource(array)
    members = [Preparing(), Preparing()]
    assemble(source, members, InferenceSettings(window=32, margin=8, block_size=40))
    assert [m.prepared for m in members] == [1, 1] and members[0].seen is source


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"window": 100}, "inference.window"),
        ({"window": 64, "margin": 64}, "inference.margin"),
        ({"blend": "cosine"}, "inference.blend"),
        ({"tta": "d8"}, "inference.tta"),
        ({"batch_size": 0}, "inference.batch_size"),
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        InferenceSettings.from_config(settings)


def test_written_maps_keep_grid_and_are_cloud_optimized(tmp_path, geotiff):
    array = np.random.default_rng(4).random((4, 70, 90), dtype=np.float32)
    array[:, :3, :3] = np.nan
    scene = geotiff(tmp_path / "scene.tif", array, **GRID, nodata=np.nan, descriptions=BANDS)
    with open_workflow_scene(scene, BANDS) as source:
        summary = write_maps(
            source,
            [ConstantPredictor(0.6)],
            MapPaths(tmp_path / "p.tif", tmp_path / "m.tif"),
            InferenceSettings(window=32, margin=16, batch_size=4, block_size=256),
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
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.tif", "p.tif", "scene.tif"]


@pytest.mark.parametrize("fail_in", ["model", "writer"])
def test_a_failure_mid_scene_leaves_no_output(tmp_path, fail_in, monkeypatch, geotiff):
    class FailingPredictor(ConstantPredictor):
        def predict_proba(self, x):
            if self.calls == 2 and fail_in == "model":  # after two blocks were written
                raise RuntimeError("out of memory")
            return super().predict_proba(x)

    if fail_in == "writer":
        from glaciermap.inference import maps

        original = maps._BlockWriter.__call__

        def failing(self, block):
            if int(block.window.row_off) > 0:
                raise OSError("disk full")
            original(self, block)

        monkeypatch.setattr(maps._BlockWriter, "__call__", failing)
    # Not constant: a constant scene is refused before any output is opened.
    values = np.random.default_rng(6).uniform(0.1, 0.9, (4, 96, 96)).astype(np.float32)
    scene = geotiff(tmp_path / "scene.tif", values, **GRID, nodata=np.nan, descriptions=BANDS)
    with (
        open_workflow_scene(scene, BANDS) as source,
        pytest.raises(RuntimeError if fail_in == "model" else OSError),
    ):
        write_maps(
            source,
            [FailingPredictor()],
            MapPaths(tmp_path / "p.tif", tmp_path / "m.tif"),
            InferenceSettings(window=32, margin=0, blend="uniform", batch_size=1, block_size=32),
            threshold=0.5,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


# ------------------------------------------------ bad pixel values, degenerate scenes


def _maps_of(tmp_path, geotiff, array, name):
    scene = geotiff(tmp_path / f"{name}.tif", array, **GRID, nodata=np.nan, descriptions=BANDS)
    out = tmp_path / name
    with open_workflow_scene(scene, BANDS) as source:
        write_maps(
            source,
            [ConstantPredictor(0.6)],
            MapPaths(out / "p.tif", out / "m.tif"),
            InferenceSettings(window=32, margin=8, batch_size=4, block_size=64),
            threshold=0.5,
        )
    with rasterio.open(out / "p.tif") as p, rasterio.open(out / "m.tif") as m:
        return p.read(1), m.read(1)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_pixels_are_nodata_exactly_like_nan(tmp_path, geotiff, bad):
    """±inf once spread nodata over whole windows (43,264 px for a 100 x 100 block)."""
    array = np.random.default_rng(7).uniform(0.1, 0.9, (4, 150, 150)).astype(np.float32)
    with_nan, with_inf = array.copy(), array.copy()
    with_nan[2, 20:30, 40:50] = np.nan
    with_inf[2, 20:30, 40:50] = bad
    prob_nan, mask_nan = _maps_of(tmp_path, geotiff, with_nan, "nan")
    prob_inf, mask_inf = _maps_of(tmp_path, geotiff, with_inf, "inf")
    assert np.count_nonzero(mask_inf == 255) == 100
    np.testing.assert_array_equal(mask_inf, mask_nan)
    np.testing.assert_array_equal(np.isnan(prob_inf), np.isnan(prob_nan))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: np.full_like(a, 0.3), r"band blue is constant \(0\.3 from the 2nd to the 98th"),
        (lambda a: a[:, :1, :1], r"1 valid pixel\(s\) of 1x1: at least 100"),
        (
            lambda a: np.where(np.arange(a[0].size).reshape(a.shape[1:]) == 5, a, np.nan),
            r"1 valid pixel\(s\) of 60x60: at least 100",
        ),
    ],
    ids=["constant", "one-by-one", "one-valid-pixel"],
)
def test_degenerate_scenes_are_refused_with_their_numbers(tmp_path, geotiff, make, message):
    array = make(np.random.default_rng(8).uniform(0.1, 0.9, (4, 60, 60)).astype(np.float32))
    with pytest.raises(InputDataError, match=rf"scene .*bad\.tif: {message}"):
        _maps_of(tmp_path, geotiff, array, "bad")
    assert not (tmp_path / "bad").exists()
