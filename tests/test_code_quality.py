"""The house rules that tools can check: ruff lint and format, Snakemake's linter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(exe).exists():
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    return [exe]


def test_ruff_lint_is_clean() -> None:
    result = subprocess.run(
        [*_ruff(), "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [*_ruff(), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean(tmp_path, snakemake) -> None:
    """Snakemake's linter over the whole workflow (every rule file) finds nothing."""
    result = snakemake(tmp_path, "--lint", config=ROOT / "config.yaml", cores=None, check=False)
    assert result.returncode == 0, result.output[-3000:]
    assert "Traceback" not in result.output  # the workflow was parsed, not skipped
    assert "Lints for" not in result.output, result.output[-3000:]
