"""The seed-ensemble rules: planned from the final runs, and run on two real checkpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from glaciermap.evaluation.metrics import evaluate_prediction
from glaciermap.inference.maps import predict_scene_maps
from glaciermap.models.checkpoint import save_prediction_checkpoint
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams, RunKey

ROOT = Path(__file__).resolve().parents[1]
CELL = {"dropout": 0.2, "activation": "sigmoid", "pooling": "mean"}
KEYS = [RunKey("pspnet", HParams.from_mapping(CELL), ("oct2000",), "noaug", s) for s in (1, 2)]
LABEL = KEYS[0].ensemble_label  # ensemble/pspnet/dropout0.2-sigmoid-mean/oct2000/noaug
BANDS = ("blue", "green", "red", "nir")
INFERENCE = {"window": 64, "margin": 16, "batch_size": 4, "tta": "flips"}


def pinned_config() -> dict:
    """tests/configs/tiny.yaml, every stage pinned, a final ensemble of two seeds."""
    config = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    config["model_selection"]["winner"] = "pspnet"
    config["hparam_grid"]["winner"] = CELL
    config["augmentation"]["winner"] = "noaug"
    config["final"] = {"train_on": ["each"], "seeds": [1, 2]}
    config["inference"] = {**config["inference"], **INFERENCE}
    return config


def test_the_final_seeds_are_planned_into_one_ensemble_per_date(tmp_path, dry_run):
    result = dry_run(tmp_path, pinned_config(), "ensembles")
    assert result.counts["maps_ensemble"] == 1 and result.counts["evaluate_ensemble"] == 1
    assert result.counts["train"] == 2
    members = ", ".join(f"results/runs/{key.path}/best.pt" for key in KEYS)
    assert f"input: {members}, results/scenes/oct2000.tif" in result.output
    assert f"output: results/eval/{LABEL}/oct2000.json" in result.output


def test_area_tables_and_change_figure_read_the_ensemble(tmp_path, dry_run):
    """With ensembles, the areas get their spread and the change figure their masks."""
    targets = ("results/maps/areas.csv", "results/figures/area_change.png")
    result = dry_run(tmp_path, pinned_config(), *targets)
    inputs = {
        rule: line for rule, line in re.findall(r"rule (\w+):\n\s+input: (.*)", result.output)
    }
    ensemble = f"results/maps/{LABEL}/oct2000"
    for rule in ("maps_areas", "maps_change_figure"):
        assert (
            f"{ensemble}/mask.tif" in inputs[rule] and f"{ensemble}/uncertainty.tif" in inputs[rule]
        )
    assert f"results/maps/{KEYS[1].path}/oct2000/mask.tif" in inputs["maps_areas"]


def test_per_glacier_products_split_the_ensemble_with_its_members_range(tmp_path, dry_run):
    result = dry_run(tmp_path, pinned_config(), "glaciers", "results/maps/areas.csv")
    jobs = re.findall(r"rule (\w+):\n\s+input: (.*)\n\s+output: (.*)", result.output)
    ensemble = f"results/maps/{LABEL}/oct2000"
    (outline_inputs,) = [i for r, i, o in jobs if o == f"{ensemble}/glaciers.gpkg"]
    for member in KEYS:  # the members' masks give the ensemble's area range
        assert f"results/maps/{member.path}/oct2000/mask.tif" in outline_inputs
    assert f"{ensemble}/uncertainty.tif" in outline_inputs
    tables = next(i for r, i, o in jobs if r == "maps_glaciers")
    assert (
        f"{ensemble}/mask.tif" in tables
        and "results/maps/baseline/oct2000/oct2000/mask.tif" in tables
    )
    assert result.counts["maps_ensemble_outlines"] == 1  # ensembles get outlines.gpkg too
    assert result.counts["maps_style"] == 2 * 2 + 3 + 1  # runs: 2 layers, ensemble 3, baseline 1


@pytest.fixture()
def ensemble_inputs(tmp_path, geotiff):
    """A workdir holding what the ensemble rules read: scene, masks, regions, two best.pt."""
    rng = np.random.default_rng(0)
    scene = rng.uniform(0.05, 0.9, (4, 90, 110)).astype(np.float32)
    scene[:, :5, :5] = np.nan
    results = tmp_path / "results"
    geotiff(results / "scenes/oct2000.tif", scene, nodata=np.nan, descriptions=BANDS)
    mask = (scene[0] > scene[3]).astype(np.uint8)
    mask[:5, :5] = 255
    geotiff(results / "masks/oct2000.tif", mask, nodata=255)
    regions = np.ones((90, 110), np.uint8)
    regions[45:] = 3  # the bottom half is the test region
    geotiff(results / "regions.tif", regions, nodata=0)
    spec = ModelSpec("pspnet", HParams.from_mapping(CELL), encoder="resnet18")
    for key in KEYS:
        torch.manual_seed(key.seed)
        normalization = {"mean": [0.4] * 4, "std": [0.2 + 0.05 * key.seed] * 4}
        path = results / "runs" / key.path / "best.pt"
        save_prediction_checkpoint(path, build_model(spec), spec, normalization, 32, 0.5)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "from snakemake.utils import validate\n"
        "from glaciermap.schema import schema_path\n\n"
        'configfile: "config.yaml"\n\n'
        "validate(config, schema_path())\n\n"
        f'include: "{ROOT}/rules/common.smk"\n'
        f'include: "{ROOT}/rules/ensemble.smk"\n'
    )
    return tmp_path, snakefile


def read(path):
    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.crs, dataset.transform


def test_the_ensemble_rules_map_and_score_the_seeds_together(ensemble_inputs, snakemake):
    workdir, snakefile = ensemble_inputs
    results = workdir / "results"
    snakemake(workdir, "ensembles", config=pinned_config(), snakefile=snakefile, cores=1)
    folder = results / "maps" / LABEL / "oct2000"
    probability, crs, transform = read(folder / "probability.tif")
    uncertainty, mask = read(folder / "uncertainty.tif")[0], read(folder / "mask.tif")[0]
    with rasterio.open(results / "scenes/oct2000.tif") as scene:
        assert (crs, transform) == (scene.crs, scene.transform)
    # the mean and spread of the members mapped one by one with the same settings
    members = []
    for key in KEYS:
        out = workdir / "single" / str(key.seed)
        predict_scene_maps(
            results / "runs" / key.path / "best.pt",
            results / "scenes/oct2000.tif",
            out / "p.tif",
            out / "m.tif",
            INFERENCE,
            "cpu",
        )
        members.append(read(out / "p.tif")[0].astype(np.float64))
    assert np.allclose(probability, (members[0] + members[1]) / 2, atol=1e-6, equal_nan=True)
    assert np.allclose(uncertainty, np.abs(members[0] - members[1]) / 2, atol=1e-6, equal_nan=True)
    assert np.nanmax(uncertainty) > 0.01 and np.isnan(uncertainty[:5, :5]).all()
    assert (mask[:5, :5] == 255).all()
    assert np.array_equal(mask[5:], (probability[5:] >= 0.5).astype(np.uint8))
    scores = json.loads((results / "eval" / LABEL / "oct2000.json").read_text())
    expected = evaluate_prediction(
        folder / "mask.tif", results / "masks/oct2000.tif", results / "regions.tif"
    )
    assert scores["run"] == LABEL and scores["date"] == "oct2000" and scores["n_members"] == 2
    assert scores["test"] == expected["test"] and scores["test"]["n_pixels"] > 0
