"""What many test files share: a GeoTIFF writer, one way to run the workflow with
Snakemake, dry runs counted per rule, the study config on the demo data, and
reading a saved figure's colours at data coordinates.

Tests get these as fixtures (``geotiff``, ``snakemake``, ``dry_run``,
``study``, ``png_at``); the helper scripts under tests/cluster, which are not test
files, ``import conftest`` for the same functions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from matplotlib.image import imread as plt_imread
from rasterio.crs import CRS

from glaciermap.io.geotiff import geotiff_profile
from glaciermap.io.grid import Grid

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"

# The default grid of test rasters: UTM 45N (the Everest demo's zone), 10 m pixels.
UTM45 = "EPSG:32645"
ORIGIN_10M = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)


# --------------------------------------------------------------------------- GeoTIFF


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    *,
    crs: str | CRS | None = UTM45,
    transform: Affine = ORIGIN_10M,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    dtype: str | None = None,
    **options: Any,
) -> Path:
    """Write ``array`` ((H, W) or (bands, H, W)) as a GeoTIFF with the package's profile.

    ``crs=None`` writes a raster without georeference (no CRS, no transform);
    ``options`` override creation options of the profile (e.g. ``compress=None``).
    Parent folders are created. Returns ``path``.
    """
    path = Path(path)
    bands = array if array.ndim == 3 else array[None]
    dtype = dtype or bands.dtype.name
    height, width = bands.shape[1:]
    grid = Grid(CRS.from_user_input(crs) if crs else None, transform, width, height)
    profile = geotiff_profile(grid, dtype, bands.shape[0], nodata) | options
    if crs is None:
        profile.pop("crs")
        profile.pop("transform")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as out:
        out.write(bands.astype(dtype, copy=False))
        if descriptions is not None:
            out.descriptions = tuple(descriptions)
    return path


@pytest.fixture(scope="session")
def geotiff() -> Callable[..., Path]:
    """``geotiff(path, array, *, crs, transform, nodata, descriptions, dtype) -> path``."""
    return write_geotiff


# --------------------------------------------------------------------------- Snakemake


@dataclass(frozen=True)
class SnakemakeRun:
    returncode: int
    output: str  # stdout and stderr, interleaved as printed
    seconds: float  # wall time of the whole command


def snakemake_command(
    workdir: Path,
    *args: str,
    config: Path | None = None,
    snakefile: Path = SNAKEFILE,
    cores: int | None = None,
) -> list[str]:
    """The command line that runs ``snakefile`` in ``workdir`` with ``args`` (targets, options)."""
    command = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(snakefile)]
    command += ["--directory", str(workdir)]
    if cores is not None:
        command += ["--cores", str(cores)]
    if config is not None:
        command += ["--configfile", str(config)]  # last: it takes every following word
    return command


def snakemake_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a workflow run, ``extra`` added: jobs import this checkout's
    ``glaciermap`` (not another install) and find this Python's commands first on PATH."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _failed_job_logs(output: str, workdir: Path, chars: int = 1500) -> str:
    """The end of the log files Snakemake names for its failed jobs."""
    tails = []
    for line in re.findall(r"^\s*log: (.+?) \(check log file", output, re.MULTILINE):
        for name in line.split(", "):
            log = workdir / name
            if log.is_file():
                tails.append(f"--- {name} (end):\n{log.read_text(errors='replace')[-chars:]}")
    return "\n".join(tails)


def run_snakemake(
    workdir: str | Path,
    *args: str,
    config: Path | Mapping[str, Any] | None = None,
    cores: int | None = 1,
    snakefile: Path = SNAKEFILE,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> SnakemakeRun:
    """Run ``snakefile`` (default: the repository's) in ``workdir`` with ``args``.

    ``workdir`` gets ``data`` linked to the repository's data/. ``config``: a
    config file, or a dict written to ``workdir/config.yaml``; None leaves the
    Snakefile's own. ``cores=None`` gives no ``--cores`` (dry runs, profiles).
    With ``check``, a non-zero exit fails the test with the end of the output
    and of the failed jobs' logs.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "data").exists():
        (workdir / "data").symlink_to(ROOT / "data", target_is_directory=True)
    if isinstance(config, Mapping):
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        config = path
    command = snakemake_command(workdir, *args, config=config, snakefile=snakefile, cores=cores)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=snakemake_env(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        printed = exc.output or b""  # what it printed until then, as bytes
        printed = printed.decode(errors="replace") if isinstance(printed, bytes) else printed
        pytest.fail(f"snakemake {' '.join(args)} ran over {timeout:.0f} s:\n{printed[-5000:]}")
    result = SnakemakeRun(done.returncode, done.stdout, time.perf_counter() - start)
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} in {workdir} exited {result.returncode}:\n"
            f"{result.output[-5000:]}\n{_failed_job_logs(result.output, workdir)}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="session")
def snakemake() -> Callable[..., SnakemakeRun]:
    """``snakemake(workdir, *targets_and_options, config=, cores=1, snakefile=, env=,
    check=True) -> SnakemakeRun(returncode, output, seconds)``."""
    return run_snakemake


# --------------------------------------------------------------------------- dry runs


@dataclass(frozen=True)
class DryRun:
    counts: dict[str, int]  # planned jobs per rule
    seconds: float
    output: str


_JOB_STATS_ROW = re.compile(r"^([A-Za-z_]\w*)\s+(\d+)$")


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table of a Snakemake dry run (the last one)."""
    counts: dict[str, int] = {}
    in_stats = False
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Job stats"):
            in_stats, counts = True, {}
        elif in_stats and line.startswith("total"):
            in_stats = False
        elif in_stats and (row := _JOB_STATS_ROW.match(line)):
            counts[row[1]] = int(row[2])
    return counts


def run_dry_run(
    workdir: str | Path, config: Path | Mapping[str, Any] | None, *args: str, **options: Any
) -> DryRun:
    """``snakemake --dry-run`` of ``args`` (targets, options) with ``config`` in ``workdir``;
    ``options`` go to :func:`run_snakemake` (``snakefile``, ``env``, ``timeout``)."""
    result = run_snakemake(workdir, *args, "--dry-run", config=config, cores=None, **options)
    return DryRun(job_counts(result.output), result.seconds, result.output)


@pytest.fixture(scope="session")
def dry_run() -> Callable[..., DryRun]:
    """``dry_run(workdir, config, *targets_and_options, snakefile=, env=)
    -> DryRun(counts, seconds, output)``."""
    return run_dry_run


# --------------------------------------------------------------------------- study config


class Study:
    """configs/study.yaml on the demo data, for dry runs of the study's plan.

    The study's inputs are downloaded by the acquire rules, which would come
    first in a plan; here the two dates read the embedded demo scene (acquire
    off). Dates, models, grid, seeds and epochs stay the study's.
    """

    DEMO_FILES = {
        "rgb": "data/everest/LE71400412000304SGS00_RGB.tif",
        "nir": "data/everest/LE71400412000304SGS00_B4.tif",
        "outlines": "data/everest/15_rgi60_glacier_outlines.gpkg",
    }
    TABLES = (
        "results/table1_models.csv",
        "results/table2_hparams.csv",
        "results/table_augmentation.csv",
        "results/table3.csv",
    )
    PINS = {
        "model_selection": {"winner": "deeplabv3plus"},
        "hparam_grid": {"winner": {"dropout": 0.5, "activation": "sigmoid", "pooling": "mean"}},
        "augmentation": {"winner": "noaug"},
    }

    @classmethod
    def config(cls, pinned: bool = False) -> dict[str, Any]:
        """A fresh copy; ``pinned`` pins every stage winner (``PINS``), so that the
        whole matrix is planned at once."""
        config = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())
        config["acquire"]["enabled"] = False
        for scene in config["data"]["scenes"].values():
            scene.pop("processing_baseline", None)
            scene.pop("file", None)
            scene.pop("validity", None)  # the demo scene has no SCL: every pixel counts as seen
            scene.update(product="generic", scale=1 / 255)
            scene["bands"] = {
                "blue": {"file": cls.DEMO_FILES["rgb"], "band": 3},
                "green": {"file": cls.DEMO_FILES["rgb"], "band": 2},
                "red": {"file": cls.DEMO_FILES["rgb"], "band": 1},
                "nir": cls.DEMO_FILES["nir"],
            }
        config["data"]["outlines"] = {"file": cls.DEMO_FILES["outlines"], "format": "rgi"}
        config["data"]["regions"] = {
            "train": {"bbox": [478000, 3088490, 502000, 3099000]},
            "test": {"bbox": [478000, 3099000, 502000, 3108140]},
        }
        if pinned:
            for section, pin in cls.PINS.items():
                config[section].update(pin)
        return config

    @classmethod
    def targets(cls, pinned: bool) -> tuple[str, ...]:
        """What a user asks for: Table 3 as is (only model selection can be planned
        before its table exists), or with pinned winners the four tables."""
        return cls.TABLES if pinned else ("results/table3.csv",)


@pytest.fixture(scope="session")
def study() -> type[Study]:
    """:class:`Study`: ``study.config(pinned)``, ``study.targets(pinned)``, ``study.TABLES``."""
    return Study


# --------------------------------------------------------------------------- figures


def png_colours(png: str | Path, axes: Any, points: np.ndarray, dpi: float) -> np.ndarray:
    """RGB (0-1) of the saved ``png`` at ``points`` ((N, 2) data coordinates of
    ``axes``) for a figure saved at ``dpi``: where the plotted data landed.

    A legend hides what lies under it: those points come back NaN.
    """
    image = plt_imread(png)
    display = axes.transData.transform(np.asarray(points, float))
    hidden = np.zeros(len(display), bool)
    for legend in [axes.get_legend(), *axes.figure.legends]:
        if legend is not None:
            (x0, y0), (x1, y1) = legend.get_window_extent().padded(2).get_points()
            x, y = display.T
            hidden |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    display = display * (dpi / axes.figure.dpi)
    cols = np.floor(display[:, 0]).astype(int)
    rows = image.shape[0] - 1 - np.floor(display[:, 1]).astype(int)  # PNG rows run downwards
    colours = image[rows, cols, :3].astype(float)
    colours[hidden] = np.nan
    return colours


@pytest.fixture(scope="session")
def png_at() -> Callable[..., np.ndarray]:
    """``png_at(png, axes, points, dpi) -> (N, 3)`` colours of a saved figure."""
    return png_colours
