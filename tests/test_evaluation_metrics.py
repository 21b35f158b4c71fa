"""Pixel metrics: hand-computed F1, nodata ignored, region restriction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rasterio.transform import from_origin

from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import (
    ConfusionCounts,
    confusion_counts,
    evaluate_prediction,
)

PRED = np.array([[1, 1, 0, 0], [1, 0, 0, 255], [0, 1, 1, 0]], dtype=np.uint8)
REF = np.array([[1, 0, 0, 1], [1, 1, 0, 1], [255, 1, 0, 0]], dtype=np.uint8)


def test_counts_by_hand_ignore_nodata():
    counts = confusion_counts(PRED, REF)
    # valid pixels: all but (1,3) (pred nodata) and (2,0) (ref nodata)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (3, 2, 2, 3)
    scores = counts.scores()
    assert scores["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 2))
    assert scores["iou"] == pytest.approx(3 / 7)
    assert scores["precision"] == pytest.approx(3 / 5)
    assert scores["recall"] == pytest.approx(3 / 5)


def test_counts_restricted_to_where():
    where = np.zeros(PRED.shape, dtype=bool)
    where[0] = True
    counts = confusion_counts(PRED, REF, where)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (1, 1, 1, 1)


def test_zero_denominators_are_undefined_never_one():
    """0/0 is undefined (None, NaN in tables), not 1.0 for "agreeing on no glacier"."""
    nothing = ConfusionCounts(tn=10).scores()
    assert nothing == {"f1": None, "iou": None, "precision": None, "recall": None}
    missed = ConfusionCounts(fn=4, tn=6).scores()
    assert missed["precision"] is None and missed["recall"] == 0.0 and missed["f1"] == 0.0
    assert ConfusionCounts(fp=3, tn=7).scores()["recall"] is None
    assert ConfusionCounts().scores()["f1"] is None


def test_class_warnings_name_the_absent_class():
    assert ConfusionCounts(tp=1, fp=1, fn=1, tn=1).class_warnings() == []
    (no_glacier,) = ConfusionCounts(fp=2, tn=8).class_warnings()
    assert "no glacier pixel among 10" in no_glacier
    (all_glacier,) = ConfusionCounts(tp=5, fn=1).class_warnings()
    assert "no not-glacier pixel" in all_glacier


def test_glacier_free_region_is_warned_and_scored_undefined(tmp_path, geotiff, caplog):
    """A test region with no glacier in the reference: no F1 of 1.0, a warning in log and JSON."""
    ref = np.where(np.arange(12).reshape(3, 4) < 4, 0, 1).astype(np.uint8)  # row 0 no glacier
    regions = np.array([[3, 3, 3, 3], [1, 1, 2, 2], [1, 1, 2, 2]], dtype=np.uint8)
    pred = geotiff(tmp_path / "mask.tif", np.zeros_like(ref), transform=GRID, nodata=255)
    ref_tif = geotiff(tmp_path / "ref.tif", ref, transform=GRID, nodata=255)
    reg = geotiff(tmp_path / "regions.tif", regions, transform=GRID, nodata=255)
    out = tmp_path / "eval.json"
    result = evaluate_prediction(pred, ref_tif, reg, out)
    assert result["test"]["f1"] is None and result["test"]["recall"] is None
    assert "no glacier pixel" in result["test"]["warnings"][0]
    assert json.loads(out.read_text())["test"]["f1"] is None
    assert "test region of" in caplog.text and "no glacier pixel" in caplog.text


GRID = from_origin(500000, 3100000, 10, 10)


def test_evaluate_prediction_regions(tmp_path, geotiff):
    regions = np.array([[3, 3, 3, 3], [1, 1, 0, 0], [1, 1, 2, 2]], dtype=np.uint8)
    pred = geotiff(tmp_path / "mask.tif", PRED, transform=GRID, nodata=255)
    ref = geotiff(tmp_path / "ref.tif", REF, transform=GRID, nodata=255)
    reg = geotiff(tmp_path / "regions.tif", regions, transform=GRID, nodata=255)
    out = tmp_path / "eval" / "july.json"
    result = evaluate_prediction(pred, ref, reg, out, run="fpn/x/july/noaug/seed1", date="july")
    assert json.loads(out.read_text()) == result
    # test region = row 0: tp 1 fp 1 fn 1 tn 1
    assert result["test"]["f1"] == pytest.approx(0.5)
    assert result["test"]["n_pixels"] == 4
    # train region = (1,0),(1,1),(2,0),(2,1); (2,0) ref nodata -> tp 2 (1,0 and 2,1), fn 1
    assert (result["train"]["tp"], result["train"]["fn"], result["train"]["fp"]) == (2, 1, 0)
    assert result["train"]["f1"] == pytest.approx(4 / 5)
    assert result["date"] == "july"


def test_evaluate_prediction_refuses_other_grid(tmp_path, geotiff):
    pred = geotiff(tmp_path / "mask.tif", PRED, transform=from_origin(0, 0, 20, 20), nodata=255)
    ref = geotiff(tmp_path / "ref.tif", REF, transform=GRID, nodata=255)
    with pytest.raises(InputDataError, match="ref.tif"):
        evaluate_prediction(pred, ref, ref)


def test_cli_evaluate(tmp_path, geotiff):
    from glaciermap.cli import main

    regions = np.full(PRED.shape, 3, dtype=np.uint8)
    paths = [
        geotiff(tmp_path / f"{n}.tif", a, transform=GRID, nodata=255)
        for n, a in (("p", PRED), ("r", REF), ("g", regions))
    ]
    out = tmp_path / "eval.json"
    args = ["evaluate", "--prediction", str(paths[0]), "--reference", str(paths[1])]
    assert main([*args, "--regions", str(paths[2]), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["test"]["f1"] == pytest.approx(0.6)
    assert json.loads(out.read_text())["train"]["f1"] is None


def test_a_truncated_mask_is_one_error_naming_it(tmp_path, geotiff):
    big = np.random.default_rng(0).integers(0, 2, (300, 300)).astype(np.uint8)
    regions = np.full(big.shape, 3, np.uint8)
    pred = geotiff(tmp_path / "mask.tif", big, transform=GRID, nodata=255)
    ref = geotiff(tmp_path / "ref.tif", big, transform=GRID, nodata=255)
    reg = geotiff(tmp_path / "regions.tif", regions, transform=GRID, nodata=255)
    data = pred.read_bytes()
    pred.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"cannot (open|read) raster \S*mask\.tif"):
        evaluate_prediction(pred, ref, reg, tmp_path / "eval.json")
    assert not (tmp_path / "eval.json").exists()
