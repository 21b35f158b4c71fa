"""Where the workflow's files live: one function per kind of file (docs/architecture.md, "Files").

The rules' inputs and outputs and the helpers of ``rules/common.smk`` all build
their paths here, as PyPSA-Eur's ``resources()``/``logs()``/``benchmarks()``
do, so that a file is named in one place. Called with concrete labels they give
a file; with wildcards (the defaults, or :data:`glaciermap.runs.RUN_PATTERN`
as ``run``) a rule's pattern. Plain strings only: the DAG code imports this.
"""

from __future__ import annotations

RESULTS = "results"
DATE = "{date}"
DATES = "{dates}"


def results(path: str) -> str:
    """``results/<path>``: every product of the workflow."""
    return f"{RESULTS}/{path}"


def logs(path: str) -> str:
    """``logs/<path>``: one job's log."""
    return f"logs/{path}"


def benchmarks(path: str) -> str:
    """``benchmarks/results/<path>``: one job's time and memory (Snakemake's benchmark)."""
    return f"benchmarks/{RESULTS}/{path}"


def scene_file(date: str = DATE) -> str:
    """A date's scene on the reference grid (four reflectance bands)."""
    return results(f"scenes/{date}.tif")


def validity_file(date: str = DATE) -> str:
    """Which pixels of a date's scene were observed."""
    return results(f"validity/{date}.tif")


def reference_mask(date: str = DATE) -> str:
    """A date's outlines rasterized on its scene: the labels every score counts against."""
    return results(f"masks/{date}.tif")


def regions_file() -> str:
    """The train/val/test split of the reference grid, one for all dates."""
    return results("regions.tif")


def tile_file(folder: str, label: str, name: str) -> str:
    """A file of a tile store: ``folder`` is ``tiles`` (a scene date) or ``chips``."""
    return results(f"{folder}/{label}/{name}")


def run_file(run: str, name: str) -> str:
    """A training run's ``metrics.json`` or ``best.pt``."""
    return results(f"runs/{run}/{name}")


def baseline_rules(dates: str = DATES) -> str:
    """The threshold baseline's rules fitted on the training tiles of ``dates``."""
    return results(f"baseline/{dates}/rules.json")


def map_file(run: str, date: str, name: str) -> str:
    """A map of ``run`` (a run, ``ensemble/...`` or ``baseline/...``) on ``date``:
    ``probability.tif``, ``mask.tif``, ``uncertainty.tif`` or ``outlines.gpkg``."""
    return results(f"maps/{run}/{date}/{name}")


def eval_file(run: str, date: str) -> str:
    """The scores of ``run``'s mask on ``date``."""
    return results(f"eval/{run}/{date}.json")


def chip_eval_file(run: str, label: str, suffix: str = "json") -> str:
    """The scores of ``run`` on chip test set ``label`` (``json``; ``csv``: per chip)."""
    return results(f"eval/{run}/chips/{label}.{suffix}")
