"""The Apptainer image definition and the conda environment, and how Snakemake
runs a job in the image.

No Apptainer runtime can be installed on these machines, so the last test puts a
STAND-IN `apptainer` on PATH: a script that records its arguments and runs the
job's command on the host. It checks what Snakemake asks of apptainer (image,
--nv from the slurm profile), not that the image works.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

import yaml
from spython.main.parse.parsers import SingularityParser

REPO = Path(__file__).resolve().parents[1]
DEFINITION = REPO / "containers" / "glaciermap.def"


def _pyproject_dependencies() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def _pin(name: str) -> str:
    """The ``name==version`` requirement of pyproject.toml."""
    (pin,) = [d for d in _pyproject_dependencies() if re.match(rf"{name}==", d)]
    return pin


def test_definition_file_parses_and_installs_the_pinned_package():
    recipe = SingularityParser(str(DEFINITION)).recipe["spython-base"]
    assert recipe.fromHeader.startswith("python:3.11")
    copied = {line.split()[0] for line in recipe.files}
    assert {"pyproject.toml", "glaciermap"} <= copied
    for source in copied:
        assert (REPO / source).exists(), f"%files copies {source}, which is not in the repository"
    install = "\n".join(recipe.install)
    # The CUDA build of torch, pinned with torchvision as in pyproject.toml.
    assert f"pip install {_pin('torch')} {_pin('torchvision')}" in install
    assert "pip install /opt/glaciermap" in install
    assert recipe.test, "the image has no %test section"


def test_conda_environment_has_python_311_and_the_pyproject_pins():
    env = yaml.safe_load((REPO / "envs" / "glaciermap.yaml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    (pip_block,) = [d for d in deps if isinstance(d, dict)]
    assert sorted(pip_block["pip"]) == sorted(_pyproject_dependencies())
    post_deploy = REPO / "envs" / "glaciermap.post-deploy.sh"
    assert os.access(post_deploy, os.X_OK)
    assert "pip install --no-deps" in post_deploy.read_text()


STAND_IN = """#!/bin/sh
# STAND-IN for apptainer (tests only): record the call, then run the job's
# command (the last three arguments: <shell> -c '<command>') on the host.
if [ "$1" = "--version" ]; then echo "apptainer version 1.3.6"; exit 0; fi
printf '%s\\n' "$*" >> "$APPTAINER_CALLS"
shift $(($# - 3))
exec "$@"
"""


def test_snakemake_runs_jobs_in_the_configured_image_with_nv(tmp_path, snakemake):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "apptainer"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "apptainer_calls.txt"

    workdir = tmp_path / "work"
    image = workdir / "containers" / "glaciermap.sif"  # the config's default image
    image.parent.mkdir(parents=True)
    image.touch()
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["software-deployment-method"] == "apptainer"
    assert "--nv" in profile["apptainer-args"].split()

    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "APPTAINER_CALLS": str(calls)}
    target = "results/scenes/oct2000.tif"
    snakemake(
        workdir,
        target,
        "--software-deployment-method",
        "apptainer",
        f"--apptainer-args={profile['apptainer-args']}",
        config=REPO / "tests" / "configs" / "tiny.yaml",
        env=env,
    )
    assert (workdir / target).is_file()
    (call,) = calls.read_text().splitlines()
    # apptainer exec [options] <image> <shell> -c '<command>'
    words = call.split()
    image_at = words.index("-c") - 2
    assert words[0] == "exec"
    assert words[image_at] == "containers/glaciermap.sif"
    assert "--nv" in words[:image_at]
