"""Workflow file paths are built in one place, glaciermap.paths."""

from __future__ import annotations

import re
from pathlib import Path

from glaciermap import paths
from glaciermap.runs import RUN_PATTERN, RunKey

ROOT = Path(__file__).resolve().parents[1]


def test_patterns_and_files_come_from_the_same_function():
    run = "fpn/dropout0.4-softmax-mean/july/noaug/seed1"
    assert paths.map_file(RUN_PATTERN, "{date}", "mask.tif") == (
        "results/maps/{model}/{hparams}/{dates}/{aug}/seed{seed}/{date}/mask.tif"
    )
    assert paths.map_file(run, "july", "mask.tif") == f"results/maps/{run}/july/mask.tif"
    assert paths.run_file(RunKey.parse(run).path, "best.pt") == f"results/runs/{run}/best.pt"
    assert paths.scene_file() == "results/scenes/{date}.tif"
    assert paths.scene_file("july") == "results/scenes/july.tif"
    assert paths.chip_eval_file("baseline/july", "alps", "csv") == (
        "results/eval/baseline/july/chips/alps.csv"
    )
    assert paths.benchmarks("maps/areas.tsv") == "benchmarks/results/maps/areas.tsv"


def test_rules_write_no_path_literal():
    """A path in a rule file goes through glaciermap.paths, not a "results/..." string."""
    literal = re.compile(r"""f?["'](results|logs|benchmarks)/""")
    found = [
        f"{file.name}:{number}: {line.strip()}"
        for file in [*sorted((ROOT / "rules").glob("*.smk")), ROOT / "Snakefile"]
        for number, line in enumerate(file.read_text().splitlines(), start=1)
        if not line.lstrip().startswith("#") and literal.search(line)
    ]
    assert found == []
