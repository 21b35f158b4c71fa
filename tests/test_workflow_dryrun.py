"""Dry runs of the study config: the planned training runs are exactly the study's matrix.

The expected runs are built here from the config with the package's own
names (HParams.slug, run folders of docs/architecture.md), independently of
rules/common.smk, and compared with the runs Snakemake plans.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from glaciermap.runs import MODEL_NAMES, HParams, RunKey

ROOT = Path(__file__).resolve().parents[1]


def planned_runs(output: str) -> set[str]:
    """The ``{run}`` of every planned training job, from a dry run's output."""
    return set(re.findall(r"output: results/runs/(\S+)/metrics\.json", output))


def slug(block: dict) -> str:
    return HParams.from_mapping(block).slug


def run(model: str, cell: str, dates: str, aug: str, seed: int) -> str:
    return RunKey(model, HParams.from_slug(cell), dates.split("+"), aug, seed).path


def expected_matrix(config: dict) -> set[str]:
    """Every run of the study with pinned winners: the four stages, shared runs once."""
    dates = list(config["data"]["scenes"])
    all_dates = "+".join(dates)
    seeds = config["seeds"]
    selection, grid = config["model_selection"], config["hparam_grid"]
    winner, cell = selection["winner"], slug(grid["winner"])
    aug = config["augmentation"]["winner"]
    runs = {
        run(m, slug(selection["hparams"]), all_dates, "noaug", s)
        for m in selection["models"]
        for s in seeds
    }
    for d, a, p in itertools.product(grid["dropout"], grid["activation"], grid["pooling"]):
        runs |= {run(winner, HParams(float(d), a, p).slug, all_dates, "noaug", s) for s in seeds}
    runs |= {
        run(winner, cell, all_dates, a, s) for a in config["augmentation"]["compare"] for s in seeds
    }
    runs |= {run(winner, cell, d, aug, s) for d in [*dates, all_dates] for s in seeds}
    return runs


@pytest.fixture(scope="module")
def study_dry_runs(tmp_path_factory, study, dry_run):
    """(config, dry run) for the study as is and with pinned winners."""
    results = {}
    for pinned in (False, True):
        config = study.config(pinned)
        workdir = tmp_path_factory.mktemp("pinned" if pinned else "unpinned")
        results[pinned] = (config, dry_run(workdir, config, *study.targets(pinned)))
    return results


def test_study_config_is_the_study(study_dry_runs):
    config, _ = study_dry_runs[False]
    assert config["model_selection"]["models"] == list(MODEL_NAMES)
    grid = config["hparam_grid"]
    assert len(grid["dropout"]) * len(grid["activation"]) * len(grid["pooling"]) == 20
    assert config["training"]["epochs"] == 50
    assert config["data"]["tiles"]["size"] == 128
    assert len(config["seeds"]) == 3


def test_unpinned_study_plans_model_selection_then_waits(study_dry_runs):
    config, result = study_dry_runs[False]
    models, seeds = config["model_selection"]["models"], config["seeds"]
    cell = slug(config["model_selection"]["hparams"])
    expected = {run(m, cell, "july+august", "noaug", s) for m in models for s in seeds}
    assert planned_runs(result.output) == expected
    assert result.counts["train"] == len(models) * len(seeds)
    assert result.counts["table1_models"] == 1


def test_pinned_study_plans_the_full_matrix(study_dry_runs):
    config, result = study_dry_runs[True]
    expected = expected_matrix(config)
    assert planned_runs(result.output) == expected
    assert result.counts["train"] == len(expected)
    # 9 architectures x 3 seeds; 20 cells x 3; 3 augmentation modes x 3; 3 training
    # sets x 3, minus the runs two stages share (the base cell, noaug, the all-dates
    # final run)
    assert len(expected) == 27 + 60 + 9 + 9 - 3 * 3


def test_study_dry_run_is_fast(study_dry_runs):
    for _, result in study_dry_runs.values():
        # benchmarks/dryrun_study.py times it on a quiet machine (goal < 10 s)
        assert result.seconds < 30


def test_pinned_winners_skip_their_stages(tmp_path, dry_run):
    """With every winner pinned, the default target trains only the final runs."""
    config = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    config["model_selection"]["winner"] = "fpn"
    config["hparam_grid"]["winner"] = {"dropout": 0.2, "activation": "sigmoid", "pooling": "max"}
    config["augmentation"]["winner"] = "aug-concat"
    result = dry_run(tmp_path, config)
    cell = "dropout0.2-sigmoid-max"
    assert planned_runs(result.output) == {run("fpn", cell, "oct2000", "aug-concat", 1)}
    for stage in ("table1_models", "table2_hparams", "table_augmentation"):
        assert stage not in result.counts
    assert result.counts["table3"] == 1


def test_final_seeds_add_final_runs_only(tmp_path, dry_run):
    """final.seeds trains the final configuration with more seeds than the stages use."""
    config = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    config["seeds"] = [1]
    config["final"]["seeds"] = [1, 2, 3]
    config["model_selection"]["winner"] = "fpn"
    config["hparam_grid"]["winner"] = {"dropout": 0.2, "activation": "sigmoid", "pooling": "max"}
    config["augmentation"]["winner"] = "noaug"
    result = dry_run(tmp_path, config)
    cell = "dropout0.2-sigmoid-max"
    assert planned_runs(result.output) == {
        run("fpn", cell, "oct2000", "noaug", seed) for seed in (1, 2, 3)
    }


EIGHT_CHANNELS = ["blue", "green", "red", "nir", "swir16", "swir22", "elevation", "slope"]


def test_swir_dem_study_plans_downloads_then_the_study_on_eight_channels(tmp_path, dry_run):
    from glaciermap.config import validate_config
    from glaciermap.data.prepare import scene_settings

    study = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())
    config = yaml.safe_load((ROOT / "configs" / "study_swir_dem.yaml").read_text())
    assert config["data"]["channels"] == EIGHT_CHANNELS
    # The study but for its inputs: channels, their bands, the DEM, the data folder.
    changed = yaml.safe_load(
        yaml.safe_dump(config).replace("data/study_swir_dem/", "data/study/")
    )  # fmt: skip
    for scene in changed["data"]["scenes"].values():
        scene["bands"] = {"blue": 1, "green": 2, "red": 3, "nir": 4}
    for key in ("channels", "dem"):
        del changed["data"][key]
    for band in ("swir16", "swir22"):
        del changed["acquire"]["assets"][band]
    assert changed == study

    result = dry_run(tmp_path, config, "results/table3.csv")
    counts = result.counts
    assert counts["acquire_dem"] == 1 and counts["acquire_outlines"] == 1
    assert counts["acquire_scene_july"] == 1 and counts["acquire_scene_august"] == 1
    assert counts["prepare_scene"] == 2
    models, seeds = config["model_selection"]["models"], config["seeds"]
    assert counts["train"] == len(models) * len(seeds)
    settings = scene_settings(validate_config(config)["data"], "july")
    assert settings["channels"] == EIGHT_CHANNELS
    assert settings["dem"]["collection"] == "cop-dem-glo-30"
