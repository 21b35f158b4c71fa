"""Load and validate the workflow configuration.

The JSON schema (``schemas/config.schema.yaml``) is the single description of
every key; the Snakefile validates with ``snakemake.utils.validate`` and the
command line with :func:`load_config`. :func:`check_config` adds the checks a
schema cannot express (files exist, labels refer to each other).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from glaciermap.acquire.settings import acquired_files
from glaciermap.channels import (
    DEFAULT_CHANNELS,
    TERRAIN,
    check_channels,
    needs_dem,
    spectral_bands,
)
from glaciermap.data.chip_dataset import ChipDataset
from glaciermap.data.chips import check_chip_dataset
from glaciermap.data.tile_size import check_override
from glaciermap.errors import ConfigError
from glaciermap.inference.settings import InferenceSettings
from glaciermap.io.outlines import glacier_ids
from glaciermap.io.scene_inputs import scene_inputs
from glaciermap.io.scenes import check_scene_sources
from glaciermap.io.terrain import check_dem
from glaciermap.schema import load_schema


def _validator_with_defaults() -> type:
    """A Draft 2020-12 validator that fills in ``default`` values while validating."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, Mapping) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _yaml_number(text: str) -> str | None:
    """How to write ``text`` so that YAML reads a number, if it is one YAML read as text.

    PyYAML (YAML 1.1) reads ``1e-3`` as a string: a float needs a dot and a signed
    exponent (``1.0e-3``).
    """
    try:
        float(text)
    except ValueError:
        return None
    mantissa, _, exponent = text.strip().lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if not exponent:
        return mantissa
    power = int(exponent)
    return f"{mantissa}e{'-' if power < 0 else '+'}{abs(power)}"


def _message(error: jsonschema.ValidationError) -> str:
    """The schema's complaint in the user's terms where it is a known YAML trap."""
    if error.validator == "type" and isinstance(error.instance, str):
        written = _yaml_number(error.instance)
        if written is not None:
            return (
                f"YAML reads {error.instance!r} as text, not a number; write {written} "
                "(a dot and a signed exponent)"
            )
    if error.validator == "uniqueItems" and isinstance(error.instance, list):
        repeated = sorted({v for v in error.instance if error.instance.count(v) > 1}, key=str)
        return (
            f"{error.instance} repeats {', '.join(map(str, repeated))}: each value "
            "must appear once (a repeated seed would silently be one run)"
        )
    return str(error.message)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, and return it."""
    validator = _validator_with_defaults()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        # A number YAML read as text explains any other complaint about that key.
        leaves = [e for error in errors for e in [error, *error.context]]
        text_numbers = [
            e
            for e in leaves
            if e.validator == "type"
            and isinstance(e.instance, str)
            and _yaml_number(e.instance) is not None
        ]
        best = text_numbers[0] if text_numbers else jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"config key '{_key_path(best)}': {_message(best)}")
    return config


def check_config(config: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """Checks beyond the schema: referenced files exist and labels are consistent."""
    base = Path(base_dir)
    data = config["data"]
    _check_chip_only(config)
    scenes = data.get("scenes", {})
    pending = acquired_files(config) if scenes else set()  # written by rules/acquire.smk
    bands = _check_channels(data, base, pending)

    for date, scene in scenes.items():
        check_override(scene.get("tiles"), f"data.scenes.{date}.tiles")
        if scene.get("file") in pending:
            continue
        if "file" in scene:
            _require_file(base / scene["file"], f"data.scenes.{date}.file")
        for entry in scene_inputs(scene, date):
            for source in entry.band_sources(base, bands).values():
                _require_file(source.file, source.key)
            validity = entry.validity(base)
            if validity is not None:
                _require_file(validity.file, validity.key)
    ref = data.get("reference_date")
    if ref is not None and ref not in scenes:
        raise ConfigError(
            f"config key 'data.reference_date': '{ref}' is not a scene label ({', '.join(scenes)})"
        )
    if scenes and data["outlines"]["file"] not in pending:
        _require_file(base / data["outlines"]["file"], "data.outlines.file")
    if scenes:
        _check_data_files(data, base, pending)
    _check_chips(data, base)
    tiles = data.get("tiles", {})
    if tiles.get("stride", 1) > tiles.get("size", 128):
        raise ConfigError("config key 'data.tiles.stride': larger than data.tiles.size")
    selection = config.get("model_selection", {})
    winner = selection.get("winner")
    if winner is not None and winner not in selection.get("models", [winner]):
        raise ConfigError(
            f"config key 'model_selection.winner': '{winner}' is not in model_selection.models"
        )
    _check_inference(config.get("inference", {}), tiles.get("size", 128))
    weights = config.get("training", {}).get("encoder_weights")
    if weights:
        _require_file(base / weights, "training.encoder_weights")


def _check_inference(inference: Mapping[str, Any], tile_size: int) -> None:
    """Window and margin together (the schema checks each alone), before any map is due."""
    settings = InferenceSettings.from_config(inference)  # refuses margin >= window
    if settings.window is None and settings.margin is not None and settings.margin >= tile_size:
        raise ConfigError(
            f"config key 'inference.margin': {settings.margin} is not less than the window, "
            f"which is the training tile (data.tiles.size = {tile_size}) when "
            "inference.window is null"
        )


def _check_channels(data: Mapping[str, Any], base: Path, pending: set[str]) -> tuple[str, ...]:
    """``data.channels`` usable, the DEM there when a channel needs it; returns the
    spectral bands every scene must supply."""
    channels = data.get("channels") or DEFAULT_CHANNELS
    try:
        check_channels(channels)
    except ValueError as exc:
        raise ConfigError(f"config key 'data.channels': {exc}") from exc
    if needs_dem(channels):
        dem = data.get("dem")
        if not dem:
            terrain = [c for c in channels if c in TERRAIN]
            raise ConfigError(
                f"config key 'data.dem': channel(s) {', '.join(terrain)} of data.channels "
                "need a DEM ({file: ...} or {collection: ..., file: ...})"
            )
        if dem["file"] not in pending:
            _require_file(base / dem["file"], "data.dem.file")
            check_dem(dem, base)
    return spectral_bands(channels)


def _check_data_files(data: Mapping[str, Any], base: Path, pending: set[str]) -> None:
    """Open the scenes' headers and the outlines' ids, so bad inputs fail before any job."""
    bands = spectral_bands(data.get("channels") or DEFAULT_CHANNELS)
    for date, scene in data["scenes"].items():
        if scene.get("file") not in pending:
            check_scene_sources(scene, date, base, bands)
    outlines = data["outlines"]
    if outlines["file"] in pending:
        return
    wanted = {"data.outlines.glaciers": outlines.get("glaciers") or []}
    for name, region in data["regions"].items():
        wanted[f"data.regions.{name}.glaciers"] = region.get("glaciers") or []
    if not any(wanted.values()):
        return
    file = base / outlines["file"]
    known = glacier_ids(file, outlines.get("layer"), outlines.get("format", "auto"))
    for key, ids in wanted.items():
        missing = [i for i in ids if i not in known]
        if missing:
            raise ConfigError(
                f"config key '{key}': {', '.join(missing)} not in outline file {file}"
            )


def _check_chip_only(config: Mapping[str, Any]) -> None:
    """A config without scenes needs chips for every role the scenes play: training
    and validation tiles (a ``train_val`` or ``kfold`` dataset) and test data (a
    ``test`` or ``kfold`` dataset)."""
    data = config["data"]
    if data.get("scenes"):
        return
    if (config.get("acquire") or {}).get("enabled"):
        raise ConfigError(
            "config key 'acquire.enabled': true needs data.scenes (and data.outlines) to "
            "download into; a chip-only config acquires nothing"
        )
    splits = {label: block.get("split") for label, block in data.get("chips", {}).items()}
    missing = [
        what
        for what, present in (
            ("a dataset with split: train_val or kfold (training and validation chips)",
             {"train_val", "kfold"} & set(splits.values())),
            ("a dataset with split: test or kfold (the test chips of Table 3)",
             {"test", "kfold"} & set(splits.values())),
        )
        if not present
    ]  # fmt: skip
    if missing:
        found = ", ".join(f"{label} ({split})" for label, split in splits.items()) or "none"
        raise ConfigError(
            "config key 'data.scenes': absent, so the config is chip-only and data.chips "
            f"needs {' and '.join(missing)}; chip datasets found: {found}"
        )


def _check_chips(data: Mapping[str, Any], base: Path) -> None:
    """Chip datasets: labels apart from the scenes', images found, outlines readable."""
    for label in data.get("chips", {}):
        if label in data.get("scenes", {}):
            raise ConfigError(
                f"config key 'data.chips.{label}': '{label}' is a scene label too; "
                "labels name one dataset in {dates} and in Table 3"
            )
    channels = data.get("channels") or DEFAULT_CHANNELS
    dem = data.get("dem") if needs_dem(channels) else None
    datasets = [
        ChipDataset.from_config(label, block, channels, dem)
        for label, block in data.get("chips", {}).items()
    ]
    for dataset in datasets:
        check_chip_dataset(dataset, base)
    folds = {d.label: d.folds for d in datasets if d.cross_validated}
    if len(set(folds.values())) > 1:
        raise ConfigError(
            f"config key 'data.chips.{next(iter(folds))}.folds': every split: kfold dataset "
            f"needs the same number of folds (a run's fold k is fold k of each): {folds}"
        )


def _require_file(path: Path, key: str) -> None:
    if not path.is_file():
        raise ConfigError(f"config key '{key}': file not found: {path}")


def load_config(
    path: str | Path, base_dir: str | Path | None = None, check_files: bool = True
) -> dict[str, Any]:
    """Read a YAML config, validate it, fill defaults and (unless ``check_files`` is
    false, e.g. before its inputs are downloaded) check its files."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} does not hold a mapping")
    validate_config(config)
    if check_files:
        check_config(config, base_dir if base_dir is not None else ".")
    return config
