"""Run identity: one path format, parsed back exactly; labels of baselines and ensembles."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from glaciermap.runs import (
    RUN_PATTERN,
    WILDCARD_PATTERNS,
    HParams,
    RunKey,
    baseline_label,
    parse_label,
)

KEY = RunKey("fpn", HParams(0.4, "softmax", "mean"), ("july", "august"), "aug-concat", 3)


def test_path_round_trips_through_parse():
    assert KEY.path == "fpn/dropout0.4-softmax-mean/july+august/aug-concat/seed3"
    assert RunKey.parse(KEY.path) == KEY
    assert RunKey.parse(f"/{KEY.path}/") == KEY
    assert KEY.configuration == "fpn/dropout0.4-softmax-mean/july+august/aug-concat"


@pytest.mark.parametrize(
    "text",
    [
        "fpn/july",
        "unet/dropout0.4-softmax-mean/july/noaug/seed1",  # not a study model
        "fpn/dropout0.4-tanh-mean/july/noaug/seed1",
        "fpn/dropout0.4-softmax-mean/july/flip/seed1",
        "fpn/dropout0.4-softmax-mean/july/noaug/1",
        "fpn/dropout0.4-softmax-mean/ju ly/noaug/seed1",
    ],
)
def test_parse_refuses_what_is_not_a_run(text):
    with pytest.raises(ValueError):
        RunKey.parse(text)


def test_slug_round_trips_and_formats_dropout_compactly():
    cell = HParams(0.05, "sigmoid", "max")
    assert cell.slug == "dropout0.05-sigmoid-max"
    assert HParams.from_slug(cell.slug) == cell
    assert HParams(0, "softmax", "mean").slug == "dropout0-softmax-mean"


def test_wildcard_patterns_accept_exactly_the_names_built_here():
    fields = KEY.fields()
    for name in ("model", "hparams", "dates", "aug", "seed"):
        assert re.fullmatch(WILDCARD_PATTERNS[name], str(fields[name])), name
    assert not re.fullmatch(WILDCARD_PATTERNS["dates"], "july+")
    assert RUN_PATTERN.format(**fields) == KEY.path


def test_labels_of_runs_baselines_and_ensembles():
    assert parse_label(KEY.path).seed == 3
    baseline = parse_label(baseline_label("july+august"))
    assert (baseline.kind, baseline.dates, baseline.seed) == ("baseline", "july+august", None)
    ensemble = parse_label(KEY.ensemble_label)
    assert (ensemble.kind, ensemble.model, ensemble.aug) == ("ensemble", "fpn", "aug-concat")


def test_dag_modules_import_without_torch():
    """rules/common.smk imports these: a dry run must not pay for torch."""
    modules = ["glaciermap.runs", "glaciermap.training.settings", "glaciermap.config"]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_fold_is_part_of_the_run_like_a_seed():
    """A cross-validation fold (docs/chips.md) ends the run's name after its seed; the
    configuration (what tables and ensembles pool) leaves both out."""
    hp = HParams(0.4, "softmax", "mean")
    key = RunKey("fpn", hp, ("alps",), "noaug", 2, fold=3)
    assert key.path == "fpn/dropout0.4-softmax-mean/alps/noaug/seed2-fold3"
    assert RunKey.parse(key.path) == key
    assert RunKey.parse(key.path.replace("-fold3", "")).fold is None
    assert key.configuration == RunKey("fpn", hp, ("alps",), "noaug", 1).configuration
    assert key.ensemble_label == "ensemble/fpn/dropout0.4-softmax-mean/alps/noaug"
    assert key.fields()["fold"] == 3 and parse_label(key.path).fold == 3
    assert re.fullmatch(WILDCARD_PATTERNS["seed"], key.seed_label)

    class Wildcards:
        model, hparams, dates, aug, seed = "fpn", hp.slug, "alps", "noaug", "2-fold3"

    assert RunKey.from_wildcards(Wildcards) == key
    with pytest.raises(ValueError, match="not a run path"):
        RunKey.parse("fpn/dropout0.4-softmax-mean/alps/noaug/seed2-fold")
