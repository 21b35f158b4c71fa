"""The training recipe: learning-rate schedule, optimizer, clipping, the geometric
augmentation mode and the per-scene normalisation, identical in training and prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from test_training_run import TinyNet, run, settings, write_date

from glaciermap.data.normalization import ArrayBands, scene_range
from glaciermap.data.prepare import cut_tiles
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import InputDataError
from glaciermap.io.grid import Grid
from glaciermap.models.checkpoint import Predictor, load_checkpoint
from glaciermap.models.normalizer import Normalizer
from glaciermap.training.augmentation import augment
from glaciermap.training.run import Trainer
from glaciermap.training.schedule import WARMUP_START_DIVISOR, learning_rate
from glaciermap.training.settings import AugmentParams
from glaciermap.training.tiles import TileTensors


def test_warmup_cosine_schedule_as_documented():
    run_settings = settings(
        epochs=10, learning_rate=0.01, lr_schedule="warmup_cosine", warmup_epochs=2,
        final_lr_fraction=0.05,
    )  # fmt: skip
    steps = 7
    rates = [learning_rate(run_settings, step, steps) for step in range(10 * steps)]
    assert rates[0] == pytest.approx(0.01 / WARMUP_START_DIVISOR)
    warmup = rates[: 2 * steps + 1]
    assert all(a < b for a, b in zip(warmup, warmup[1:], strict=False))  # rising to the peak
    assert rates[2 * steps] == pytest.approx(0.01)
    decay = rates[2 * steps :]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert rates[-1] == pytest.approx(0.01 * 0.05)
    middle = 2 * steps + (10 * steps - 1 - 2 * steps) / 2
    assert learning_rate(run_settings, math.ceil(middle), steps) < 0.01 * (1 + 0.05) / 2 + 1e-9
    constant = settings(learning_rate=0.003)
    assert {learning_rate(constant, s, steps) for s in range(30)} == {0.003}


def test_each_step_trains_at_its_scheduled_rate_with_adamw_and_clipping(tmp_path):
    tiles = write_date(tmp_path, seed=1, n_train=8, n_val=4)
    run_settings = settings(
        optimizer="adamw", weight_decay=0.01, lr_schedule="warmup_cosine", warmup_epochs=1,
        grad_clip_norm=0.5, aug="noaug",
    )  # fmt: skip
    data = TileTensors(*(torch.from_numpy(np.asarray(a)) for a in _arrays(tiles["train"])))
    model = TinyNet(run_settings.spec)
    normalizer = Normalizer({"mode": "scene"}, 4, torch.device("cpu"))
    trainer = Trainer(run_settings, model, torch.device("cpu"), normalizer, steps_per_epoch=2)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    for step in range(4):
        trainer.train_step(data[torch.arange(4)], step)
        assert trainer.optimizer.param_groups[0]["lr"] == learning_rate(run_settings, step, 2)
        norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
        assert norm <= 0.5 + 1e-5  # clipped before the step


def _arrays(path):
    tiles = TileSet.load(path)
    return tiles.images, tiles.masks, tiles.ranges


def test_geometric_mode_flips_and_turns_image_and_mask_together():
    params = AugmentParams.from_config({"geometric": {"brightness": 0.0, "contrast": 0.0}},
                                       "aug-geometric")  # fmt: skip
    assert (params.hflip, params.vflip, params.rot90) == (0.5, 0.5, True)
    assert params.jitter == {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}
    # An image whose every band is its mask: any transform that keeps them aligned
    # leaves image == mask; 64 tiles draw every flip and turn.
    masks = (torch.rand(64, 8, 8, generator=torch.Generator().manual_seed(3)) > 0.5).to(torch.uint8)
    images = masks.float().unsqueeze(1).repeat(1, 4, 1, 1)
    out_images, out_masks = augment(images, masks, params, torch.Generator().manual_seed(4))
    assert torch.equal(out_images, out_masks.float().unsqueeze(1).expand(-1, 4, -1, -1))
    assert not torch.equal(out_masks, masks)  # something moved
    mild = AugmentParams.from_config({}, "aug-geometric")
    assert mild.jitter["brightness"] == 0.1 and mild.jitter["saturation"] == 0


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scene = rng.gamma(2.0, 0.1, (4, 96, 96)).astype(np.float32)
    scene[:, 40:70, 20:60] += 0.6  # bright "ice"
    scene[:, :5, :] = np.nan  # a nodata strip
    return scene


def test_scene_normalisation_is_identical_in_training_and_prediction(tmp_path):
    """Tiles carry the scene's robust range; the predictor measures the same range on the
    scene and feeds the model exactly the tensor the trainer normalised."""
    scene = _scene(0)
    grid = Grid(CRS.from_epsg(32645), Affine(10.0, 0.0, 5e5, 0.0, -10.0, 7e6), 96, 96)
    mask = np.zeros((96, 96), np.uint8)
    windows = np.array([[32, 32, 32, 32]])
    ranges = scene_range(ArrayBands(scene))
    tiles, _ = cut_tiles(scene, mask, windows, grid, 0.5, ranges)
    np.testing.assert_array_equal(tiles.ranges[0], ranges)

    tensors = TileTensors(
        torch.from_numpy(tiles.images),
        torch.from_numpy(tiles.masks),
        torch.from_numpy(tiles.ranges),
    )
    trainer_input = Normalizer({"mode": "scene"}, 4, torch.device("cpu"))(
        tensors.images, tensors.ranges
    )
    spec = settings(normalization="scene").spec
    seen = []

    class Recorder(TinyNet):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    predictor = Predictor(Recorder(spec), spec, {"mode": "scene"}, 32, 0.5)
    predictor.prepare(ArrayBands(scene))
    predictor.predict_proba(torch.from_numpy(scene[None, :, 32:64, 32:64].copy()))
    assert torch.equal(seen[0], trainer_input)


def test_scene_normalisation_ignores_a_gain_and_an_offset(tmp_path):
    """What makes it transfer: 8-bit DNs or reflectance, same input to the model."""
    tiles = write_date(tmp_path, seed=2)
    run_settings = settings(normalization="scene", epochs=1, aug="noaug")
    run(run_settings, tiles, tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint["normalization"] == {"mode": "scene", "percentiles": [2.0, 98.0]}
    model = TinyNet(run_settings.spec)
    model.load_state_dict(checkpoint["state_dict"])
    predictor = Predictor(model, run_settings.spec, checkpoint["normalization"], 32, 0.5)
    scene = np.nan_to_num(_scene(1), nan=0.0)
    probabilities = []
    for gain, offset in ((1.0, 0.0), (255.0, 3.0)):
        changed = scene * gain + offset
        predictor.prepare(ArrayBands(changed))
        probabilities.append(predictor.predict_proba(torch.from_numpy(changed[None])))
    torch.testing.assert_close(probabilities[0], probabilities[1], atol=1e-4, rtol=0)
    fresh = Predictor(model, run_settings.spec, checkpoint["normalization"], 32, 0.5)
    with pytest.raises(InputDataError, match="prepare"):
        fresh.predict_proba(torch.zeros(1, 4, 32, 32))
