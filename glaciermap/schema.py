"""The config JSON schema and the defaults it gives, the single source of both.

Every settings dataclass (:class:`~glaciermap.training.settings.RunSettings`,
:class:`~glaciermap.inference.settings.InferenceSettings`,
:class:`~glaciermap.data.chip_settings.ChipDataset`...) takes its field defaults
from here, so one built without a config equals one built from an empty
config. Imports only PyYAML: the workflow's DAG code uses it.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def schema_path() -> Path:
    """Path of the config JSON schema shipped with the package."""
    return Path(str(resources.files("glaciermap") / "schemas" / "config.schema.yaml"))


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(schema_path().read_text())


def load_schema() -> dict[str, Any]:
    """The schema as a fresh mapping (callers may change it)."""
    return copy.deepcopy(_schema())


def schema_defaults(*where: str) -> dict[str, Any]:
    """The ``default`` of each property of the object at ``where``, e.g.
    ``schema_defaults("training")`` or ``schema_defaults("$defs", "chip_dataset")``;
    a name after the first walks into that object's ``properties``."""
    node = _schema()
    names = list(where)
    if names[:1] == ["$defs"]:
        node, names = node["$defs"][names[1]], names[2:]
    for name in names:
        node = node["properties"][name]
    return {
        name: copy.deepcopy(sub["default"])
        for name, sub in node.get("properties", {}).items()
        if "default" in sub
    }


def default_field(value: Any) -> Any:
    """A dataclass field whose default is ``value`` (a fresh copy each time for
    lists and mappings, as dataclasses require)."""
    if isinstance(value, dict | list):
        return field(default_factory=lambda: copy.deepcopy(value))
    return field(default=value)
