"""Run settings from the workflow config, and the ``glaciermap train`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal

import pytest
import yaml
from test_training_run import write_date

from glaciermap.cli import main
from glaciermap.config import validate_config
from glaciermap.errors import ConfigError
from glaciermap.runs import HParams, RunKey
from glaciermap.training import commands
from glaciermap.training.interruption import RunInterrupted
from glaciermap.training.settings import RunSettings


def config(**training) -> dict:
    data = {
        "data": {
            "scenes": {
                "july": {
                    "acquired": "2023-07-01",
                    "file": "s.tif",
                    "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
                }
            },
            "outlines": {"file": "o.gpkg"},
            "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
        },
        "training": training,
        "augmentation": {"vflip": 0.3, "rot90": True, "jitter": {"hue": 0.1}},
    }
    return validate_config(data)


def key(model="fpn", slug="dropout0.5-sigmoid-max", dates="july", aug="noaug", seed=1) -> RunKey:
    return RunKey(model, HParams.from_slug(slug), dates.split("+"), aug, seed)


def test_from_config_applies_defaults_overrides_and_augmentation():
    cfg = config(epochs=7, models={"pspnet": {"learning_rate": 0.01, "batch_size": 8}})
    s = RunSettings.from_config(cfg, key("pspnet", dates="july+august", aug="aug-online", seed=3))
    assert s.hparams == HParams(0.5, "sigmoid", "max")
    assert s.dates == ("july", "august") and s.seed == 3 and s.epochs == 7
    assert s.learning_rate == 0.01 and s.batch_size == 8
    assert s.augmentation.vflip == 0.3 and s.augmentation.rot90
    assert s.augmentation.jitter == {
        "brightness": 0.25,
        "contrast": 0.25,
        "saturation": 0.25,
        "hue": 0.1,
    }
    other = RunSettings.from_config(cfg, key(seed=3))
    # Without a per-model override a run takes the schema's defaults.
    assert other.learning_rate == cfg["training"]["learning_rate"]
    assert other.batch_size == cfg["training"]["batch_size"]
    assert other.learning_rate != s.learning_rate
    # A run without augmentation does not depend on the augmentation settings.
    assert other.augmentation is None
    assert s.to_dict()["dates"] == "july+august" and s.to_dict()["hparams"] == s.hparams.slug


def test_params_carry_every_setting_the_run_uses():
    cfg = config(epochs=7, threads=3, image_every=2)
    settings = RunSettings.from_config(cfg, key(aug="aug-concat"))
    params = settings.to_params()
    assert "threads" not in params and params["image_every"] == 2
    assert list(params) == sorted(params)  # reordering the config reruns nothing
    again = RunSettings.from_params(params, threads=5)
    assert again == dataclasses.replace(settings, threads=5)
    with pytest.raises(ConfigError, match="unknown settings"):
        RunSettings.from_params({**params, "mystery": 1}, threads=1)


@pytest.mark.parametrize(
    ("kwargs", "key_name"),
    [
        ({"models": {"fpn": {"learnin_rate": 1}}}, "training.models.fpn.learnin_rate"),
        ({"models": {"fpn": {"epochs": 0}}}, "training.epochs"),
        ({"batch_size": 1}, "training.batch_size"),
    ],
)
def test_bad_overrides_name_the_key(kwargs, key_name):
    with pytest.raises(ConfigError, match=key_name):
        RunSettings.from_config(config(**kwargs), key())


def test_bad_hparams_slug_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="hparams"):
        commands._run_key(
            argparse.Namespace(
                model="fpn", hparams="dropout0.5-tanh-max", dates="july", aug="noaug", seed=1
            )
        )


def test_train_command_writes_the_run_folder(tmp_path, monkeypatch):
    date_dir = tmp_path / "results" / "tiles" / "july"
    tiles = write_date(date_dir, seed=1, n_train=4, n_val=2)
    for split in ("train", "val"):  # the command reads {tiles}/{date}/{split}.npz
        tiles[split].rename(date_dir / f"{split}.npz")
    cfg = config(epochs=1, encoder="resnet18", batch_size=2, threads=1, device="cpu")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    code = main(
        ["train", "--model", "pspnet", "--hparams", "dropout0.2-sigmoid-mean", "--dates", "july"]
    )
    assert code == 0
    run = tmp_path / "results/runs/pspnet/dropout0.2-sigmoid-mean/july/noaug/seed1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["encoder"] == "resnet18" and len(metrics["epochs"]) == 1
    assert (run / "best.pt").is_file()


def test_train_command_reports_missing_tiles(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config()))
    (tmp_path / "tiles" / "july").mkdir(parents=True)
    (tmp_path / "tiles" / "july" / "stats.json").write_text(
        json.dumps(
            {"bands": ["blue", "green", "red", "nir"], "count": 1, "mean": [0] * 4, "std": [1] * 4}
        )
    )
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "train",
            "--model",
            "fpn",
            "--hparams",
            "dropout0.2-sigmoid-mean",
            "--dates",
            "july",
            "--tiles",
            "tiles",
        ]
    )
    assert code == 1
    assert "tiles/july/train.npz" in capsys.readouterr().err


def test_sigterm_in_the_command_exits_143(tmp_path, monkeypatch):
    def stopped(*args, **kwargs):
        raise RunInterrupted(signal.SIGTERM, "last.pt")

    monkeypatch.setattr(commands, "train_run", stopped)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["train", "--model", "fpn", "--hparams", "dropout0.2-sigmoid-mean", "--dates", "july"])
    assert exited.value.code == 143


@pytest.mark.parametrize(
    ("text", "written"), [("1e-3", "1.0e-3"), ("5E-4", "5.0e-4"), ("2.5e4", "2.5e+4")]
)
def test_a_number_yaml_reads_as_text_is_explained(text, written):
    value = yaml.safe_load(f"learning_rate: {text}")["learning_rate"]
    assert isinstance(value, str)  # PyYAML's YAML 1.1: the trap itself
    advice = re.escape(written)
    message = rf"'training\.learning_rate': YAML reads '{text}' as text.*write {advice} "
    with pytest.raises(ConfigError, match=message):
        config(learning_rate=value)
    assert isinstance(yaml.safe_load(f"x: {written}")["x"], float)  # the advice works


@pytest.mark.parametrize("where", ["seeds", "final"])
def test_repeated_seeds_are_refused_naming_the_key(where):
    data = config()
    data.pop("final", None)
    if where == "seeds":
        data["seeds"] = [1, 2, 1]
    else:
        data["final"] = {"seeds": [4, 4]}
    key_name = "seeds" if where == "seeds" else r"final\.seeds"
    with pytest.raises(ConfigError, match=rf"config key '{key_name}': .* repeats \d"):
        validate_config(data)
