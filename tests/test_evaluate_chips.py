"""Scoring checkpoints, ensembles and the threshold baseline on labelled chips, and
the ``glaciermap evaluate-chips`` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from chipdata import (
    IGNORE,
    NODATA_DN,
    SCALE,
    ChipSpec,
    chip_arrays,
    dataset_block,
    site,
    write_chip,
    write_raster,
)

from glaciermap.cli import main
from glaciermap.data.chip_dataset import ChipDataset, image_files
from glaciermap.errors import InputDataError
from glaciermap.evaluation.baseline import FORMAT
from glaciermap.evaluation.chips import BaselinePredictor, evaluate_chips_baseline, score_chips
from glaciermap.models.checkpoint import load_predictor, save_prediction_checkpoint
from glaciermap.models.ensemble import CheckpointEnsemble
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

SPECS = (
    ChipSpec("a_utm", *site(0), seed=1),
    ChipSpec("b_laea", *site(1), crs="EPSG:3035", shape=(40, 56), seed=2),
    ChipSpec("c_small", *site(2), shape=(20, 24), seed=3),  # smaller than a 32 px tile
)


DATASET = {"mode": "dataset", "mean": [0.3] * 4, "std": [0.25] * 4}
SCENE = {"mode": "scene", "percentiles": [2, 98]}


def save_checkpoint(
    path: Path, seed: int, threshold: float = 0.5, normalization: dict = DATASET
) -> Path:
    torch.manual_seed(seed)
    spec = ModelSpec("pspnet", HParams(0.2, "sigmoid", "mean"), encoder="resnet18")
    save_prediction_checkpoint(path, build_model(spec), spec, normalization, 32, threshold)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    return [save_checkpoint(root / f"seed{seed}.pt", seed) for seed in (1, 2)]


@pytest.fixture
def chips(tmp_path) -> Path:
    for spec in SPECS:
        write_chip(tmp_path, spec)
    return tmp_path


def expected_arrays(spec: ChipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance with NaN nodata, and where a pixel counts, from the generated arrays."""
    dn, mask = chip_arrays(spec)
    bands = np.where(dn == NODATA_DN, np.nan, dn * SCALE).astype(np.float32)
    counted = (mask != IGNORE) & (dn != NODATA_DN).all(axis=0)
    return bands, counted


def counts(predicted: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    return {
        "tp": int((predicted & truth).sum()),
        "fp": int((predicted & ~truth).sum()),
        "fn": int((~predicted & truth).sum()),
        "tn": int((~predicted & ~truth).sum()),
    }


def expected_counts(probability_of) -> dict[str, int]:
    """Pooled counts of probability >= 0.5 against the masks, over counted pixels only."""
    total = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)
    for spec in SPECS:
        bands, counted = expected_arrays(spec)
        _, mask = chip_arrays(spec)
        predicted = probability_of(bands) >= 0.5
        for key, value in counts(predicted[counted], mask[counted] == 1).items():
            total[key] += value
    return total


def probability(path: Path, bands: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.nan_to_num(bands, nan=0.0))[None]
    return load_predictor(path).predict_proba(x)[0].numpy()


def dataset(root: Path, **extra) -> ChipDataset:
    return ChipDataset.from_config("karakoram", dataset_block(root, **extra))


def test_ignore_and_nodata_pixels_never_count(chips):
    data = dataset(chips)
    images = image_files(data)
    truth = {spec.stem: chip_arrays(spec)[1] for spec in SPECS}

    def right_where_labelled_wrong_elsewhere(chip):
        mask = truth[chip.files.image.stem]
        return np.where(mask == IGNORE, True, mask == 1) ^ ~np.isfinite(chip.bands[0])

    scores = score_chips(data, images, right_where_labelled_wrong_elsewhere)
    counted = sum(int(expected_arrays(spec)[1].sum()) for spec in SPECS)
    assert scores.pooled.n_pixels == counted
    assert scores.pooled.scores()["f1"] == 1.0
    everything = score_chips(data, images, lambda chip: np.ones(chip.labels.shape, bool))
    glacier = sum(int((chip_arrays(s)[1][expected_arrays(s)[1]] == 1).sum()) for s in SPECS)
    assert (everything.pooled.tp, everything.pooled.fp) == (glacier, counted - glacier)
    assert everything.pooled.fn == everything.pooled.tn == 0


def test_a_chip_smaller_than_a_tile_is_scored_on_its_own_pixels(chips, checkpoints):
    data = dataset(chips)
    scores = score_chips(data, image_files(data), CheckpointEnsemble(checkpoints[:1], "cpu"))
    row = next(r for r in scores.rows if "c_small" in r["image"])
    _, counted = expected_arrays(SPECS[2])
    assert row["n_pixels"] == counted.sum() < 20 * 24


def test_the_command_prints_pooled_scores_and_writes_per_chip_rows(chips, checkpoints, capsys):
    out_csv, out_json = chips / "scores.csv", chips / "scores.json"
    code = main(
        ["evaluate-chips", "--checkpoint", str(checkpoints[0]), "--images", f"{chips}/images/*.tif",
         "--masks", f"{chips}/masks/{{stem}}.tif", "--bands", "blue=1,green=2,red=3,nir=4",
         "--scale", str(SCALE), "--nodata", "0", "--ignore", "255", "--device", "cpu",
         "--out", str(out_csv), "--json", str(out_json)]
    )  # fmt: skip
    assert code == 0
    expected = expected_counts(lambda bands: probability(checkpoints[0], bands))
    result = json.loads(out_json.read_text())
    assert {k: result["pooled"][k] for k in expected} == expected
    tp, fp, fn = expected["tp"], expected["fp"], expected["fn"]
    printed = capsys.readouterr().out
    assert re.search(rf"^F1 {2 * tp / (2 * tp + fp + fn):.3f}$", printed, re.M), printed
    assert re.search(rf"^IoU {tp / (tp + fp + fn):.3f}$", printed, re.M)
    per_chip = pd.read_csv(out_csv)
    assert len(per_chip) == 3 and (per_chip["status"] == "scored").all()
    assert per_chip[["tp", "fp", "fn", "tn"]].sum().to_dict() == expected


def test_several_checkpoints_are_scored_by_their_mean_probability(chips, checkpoints):
    data = dataset(chips)
    scores = score_chips(data, image_files(data), CheckpointEnsemble(checkpoints, "cpu"))
    expected = expected_counts(
        lambda bands: (probability(checkpoints[0], bands) + probability(checkpoints[1], bands)) / 2
    )
    assert {k: getattr(scores.pooled, k) for k in expected} == expected
    single = score_chips(data, image_files(data), CheckpointEnsemble(checkpoints[:1], "cpu"))
    assert single.pooled != scores.pooled  # the second member changes the prediction


def test_checkpoints_with_different_thresholds_need_one_given(tmp_path, checkpoints):
    other = save_checkpoint(tmp_path / "other.pt", 3, threshold=0.4)
    with pytest.raises(Exception, match=r"different thresholds.*--threshold"):
        CheckpointEnsemble([checkpoints[0], other], "cpu")
    assert CheckpointEnsemble([checkpoints[0], other], "cpu", threshold=0.6).threshold == 0.6


def test_the_threshold_baseline_is_scored_like_a_model(chips):
    rules = chips / "rules.json"
    rule = {"feature": "blue", "direction": ">=", "threshold": 0.4}
    rules.write_text(json.dumps({"format": FORMAT, "rules": [rule]}))
    block = dataset_block(chips)
    result = evaluate_chips_baseline(
        rules, block, "karakoram", image_files(dataset(chips)),
        chips / "eval.json", chips / "eval.csv", "baseline/oct2000",
    )  # fmt: skip
    expected = expected_counts(lambda bands: np.nan_to_num(bands[0]) >= 0.4)
    assert {k: result["pooled"][k] for k in expected} == expected
    assert result["run"] == "baseline/oct2000" and result["chips"] == "karakoram"
    assert BaselinePredictor(rules).rules[0].feature == "blue"


def test_command_errors_name_the_option(chips, checkpoints, capsys):
    base = ["evaluate-chips", "--checkpoint", str(checkpoints[0]), "--device", "cpu",
            "--out", str(chips / "s.csv")]  # fmt: skip
    masks = ["--masks", f"{chips}/masks/{{stem}}.tif"]
    assert main([*base, "--images", f"{chips}/none/*.tif", *masks]) == 1
    assert "option --images: no file matches" in capsys.readouterr().err
    assert main([*base, "--images", f"{chips}/images/*.tif", *masks, "--bands", "red=1"]) == 1
    assert "--bands: blue, green, nir missing" in capsys.readouterr().err
    assert main([*base, "--images", f"{chips}/images/*.tif", "--masks", "m.tif"]) == 1
    assert "option --masks" in capsys.readouterr().err
    assert not (chips / "s.csv").exists()


def test_a_scene_normalised_model_scales_each_chip_by_its_own_range(chips, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "scene.pt", 4, normalization=SCENE)

    def by_own_range(bands):
        valid = np.isfinite(bands).all(axis=0)
        ranges = np.percentile(bands[:, valid], [2, 98], axis=1).T.astype(np.float32)
        x = torch.from_numpy(np.nan_to_num(bands, nan=0.0))[None]
        return load_predictor(checkpoint).predict_proba(x, torch.from_numpy(ranges))[0].numpy()

    data = dataset(chips)
    scores = score_chips(data, image_files(data), CheckpointEnsemble([checkpoint], "cpu"))
    expected = expected_counts(by_own_range)
    assert {k: getattr(scores.pooled, k) for k in expected} == expected
    # A gain on every chip changes nothing: each is scaled by its own range.
    brighter = dataset(chips, scale=3 * SCALE)
    again = score_chips(brighter, image_files(brighter), CheckpointEnsemble([checkpoint], "cpu"))
    assert again.pooled == scores.pooled


# ---------------------------------------------------------------- label values checked


def to_65535(mask: np.ndarray) -> np.ndarray:
    """uint16 masks whose unlabelled value is 65535, not the dataset's ignore 255."""
    return np.where(mask == IGNORE, 65535, mask.astype(np.uint16))


def rewrite_masks(root: Path, convert, nodata=None, dtype=None) -> None:
    """Each chip's mask replaced by ``convert(mask)``, tagged with ``nodata``."""
    for spec in SPECS:
        mask = convert(chip_arrays(spec)[1])
        write_raster(root / "masks" / f"{spec.stem}.tif", mask.astype(dtype or mask.dtype),
                     spec.grid(), nodata=nodata)  # fmt: skip


def oracle(chip):
    """Right wherever a label counts: the chip's own mask read back."""
    return chip.labels == 1


@pytest.mark.parametrize("tag", [0, 1])
def test_a_mask_nodata_tag_never_removes_a_class(chips, tag):
    """GEE exports tag 0 as nodata while 0 means not glacier: both classes still count."""
    data = dataset(chips)
    untagged = score_chips(data, image_files(data), oracle)
    rewrite_masks(chips, lambda mask: mask, nodata=tag)
    tagged = score_chips(data, image_files(data), oracle)
    assert tagged.pooled == untagged.pooled and tagged.pooled.tn > 0 and tagged.pooled.tp > 0
    meaning = "not glacier" if tag == 0 else "glacier"
    assert f"mask nodata tag {tag} is a class value, read as {meaning}" in (
        tagged.reading.describe(data)
    )


@pytest.mark.parametrize(
    ("convert", "dtype", "values"),
    [
        (lambda m: np.where(m == 1, 2, m), None, "2 ("),  # glacier 2, default glacier [1]
        (to_65535, "uint16", "65535 ("),
    ],
)
def test_unknown_mask_values_are_an_error_naming_file_and_values(
    chips, checkpoints, capsys, convert, dtype, values
):
    rewrite_masks(chips, convert, dtype=dtype)
    with pytest.raises(InputDataError, match=r"mask .*masks/a_utm\.tif: values .*neither glacier"):
        score_chips(dataset(chips), image_files(dataset(chips)), oracle)
    out_csv = chips / "s.csv"
    code = main(
        ["evaluate-chips", "--checkpoint", str(checkpoints[0]), "--images", f"{chips}/images/*.tif",
         "--masks", f"{chips}/masks/{{stem}}.tif", "--scale", str(SCALE), "--nodata", "0",
         "--device", "cpu", "--out", str(out_csv)]
    )  # fmt: skip
    error = capsys.readouterr().err
    assert code == 1 and values in error and "a_utm.tif" in error
    assert len(error.strip().splitlines()) == 1
    assert not out_csv.exists()


def test_an_unlabelled_value_tagged_as_nodata_is_no_label(chips):
    rewrite_masks(chips, to_65535, nodata=65535, dtype="uint16")
    data = dataset(chips)
    scores = score_chips(data, image_files(data), oracle)
    counted = sum(int(expected_arrays(spec)[1].sum()) for spec in SPECS)
    assert scores.pooled.n_pixels == counted
    assert "65535: nodata tag: ignore" in scores.reading.describe(data)


def test_a_glacier_free_chip_set_warns_and_reports_undefined_scores(chips, checkpoints, capsys):
    rewrite_masks(chips, lambda m: np.where(m == 1, 0, m))
    out_json = chips / "scores.json"
    code = main(
        ["evaluate-chips", "--checkpoint", str(checkpoints[0]), "--images", f"{chips}/images/*.tif",
         "--masks", f"{chips}/masks/{{stem}}.tif", "--scale", str(SCALE), "--nodata", "0",
         "--device", "cpu", "--out", str(chips / "s.csv"), "--json", str(out_json)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "WARNING: the reference has no glacier pixel" in printed
    assert re.search(r"^recall undefined \(0/0\)$", printed, re.M), printed
    assert "F1 1.000" not in printed
    result = json.loads(out_json.read_text())
    assert result["pooled"]["recall"] is None and result["warnings"]
    assert re.search(r"^mask values found: 0: not glacier \(\d+ px\), 255: ignore", printed, re.M)
