"""benchmarks/gpu_check.sh refuses, with a clear message, to run where there is no CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_exits_nonzero_and_says_why_without_cuda(tmp_path):
    work = tmp_path / "work"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    env["GPU_CHECK_DIR"] = str(work)
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "sees no CUDA device" in done.stderr
    assert "nothing was measured" in done.stderr
    assert "==" not in done.stdout  # no step started
    assert sorted(p.name for p in work.iterdir()) == []  # nothing measured, nothing written


def test_gpu_check_refuses_unknown_arguments(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--fast"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "usage:" in done.stderr
