"""The schema is the single source of every settings default, and the workflow's
DAG code (settings, run names, paths) imports no heavy library."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import pytest

from glaciermap.acquire.settings import AcquireSettings
from glaciermap.config import validate_config
from glaciermap.data.chip_dataset import ChipDataset
from glaciermap.inference.settings import InferenceSettings
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import AUG_MODES, NO_AUG, HParams, RunKey
from glaciermap.schema import schema_defaults
from glaciermap.training.settings import AugmentParams, RunSettings


def empty_config(**sections) -> dict:
    """The smallest valid config, every optional section left to the schema."""
    data = {
        "scenes": {"july": {"acquired": "2023-07-01", "file": "s.tif", "bands": {
            "blue": 1, "green": 2, "red": 3, "nir": 4}}},
        "outlines": {"file": "o.gpkg"},
        "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
    }  # fmt: skip
    return validate_config({"data": data, **sections})


@pytest.mark.parametrize("aug", AUG_MODES)
def test_run_settings_without_a_config_equal_those_of_an_empty_config(aug):
    key = RunKey("fpn", HParams(0.4, "softmax", "mean"), ("july",), aug, 1)
    bare = RunSettings(model=key.model, hparams=key.hparams, dates=key.dates, aug=aug)
    assert bare == RunSettings.from_config(empty_config(), key)
    # Every training key of the schema is a field default, none is left behind.
    training = schema_defaults("training")
    fields = {f.name for f in dataclasses.fields(RunSettings)}
    assert set(training) - fields == {"models"}
    assert {name: getattr(bare, name) for name in set(training) - {"models"}} == {
        name: value for name, value in training.items() if name != "models"
    }
    if aug != NO_AUG:  # each mode draws what its schema defaults say
        assert bare.augmentation == AugmentParams.from_config(empty_config()["augmentation"], aug)


def test_model_spec_defaults_are_those_of_the_run_settings():
    bare = RunSettings(model="fpn", hparams=HParams(0.4, "softmax", "mean"), dates=("july",))
    assert ModelSpec("fpn", HParams(0.4, "softmax", "mean")) == bare.spec


def test_augment_params_defaults_are_the_schema_defaults():
    block = empty_config()["augmentation"]
    assert AugmentParams() == AugmentParams.from_config(block, "aug-concat")
    assert AugmentParams().jitter == schema_defaults("augmentation", "jitter")


def test_inference_settings_defaults_are_the_schema_defaults():
    config = empty_config()
    assert InferenceSettings() == InferenceSettings.from_config(config["inference"])
    assert InferenceSettings().block_size == schema_defaults("inference")["block_size"]


def test_chip_dataset_defaults_are_the_schema_defaults():
    block = {"images": "x/*.tif", "masks": "m/{stem}.tif", "split": "test"}
    config = empty_config()
    config["data"]["chips"] = {"alps": block}
    filled = validate_config(config)["data"]["chips"]["alps"]
    assert ChipDataset("alps", "x/*.tif", "test", masks="m/{stem}.tif") == (
        ChipDataset.from_config("alps", filled)
    )


# The modules the Snakefile and rules/common.smk import to build the DAG.
DAG_MODULES = (
    "glaciermap.schema",
    "glaciermap.runs",
    "glaciermap.paths",
    "glaciermap.training.settings",
    "glaciermap.inference.settings",
    "glaciermap.data.chip_dataset",
    "glaciermap.acquire.settings",
    "glaciermap.utils.params",
)
HEAVY = ("torch", "pandas", "geopandas", "rasterio", "matplotlib", "segmentation_models_pytorch")


def test_dag_modules_import_no_heavy_library():
    code = (
        "import importlib, json, sys\n"
        f"for name in {DAG_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert set(DAG_MODULES) <= loaded
    assert sorted(name for name in HEAVY if name in loaded) == []


def test_acquire_settings_take_absent_keys_from_the_schema():
    section = {
        "enabled": True,
        "aoi": {"bbox": [7.0, 45.0, 8.0, 46.0]},
        "dates": {"july": "2023-07-01..2023-07-31"},
    }
    validated = empty_config(acquire=copy.deepcopy(section))["acquire"]
    assert AcquireSettings.from_config(section) == AcquireSettings.from_config(validated)
