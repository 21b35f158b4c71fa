"""The house rules that tools can check: ruff, mypy, Snakemake's linter, an acyclic import graph."""

from __future__ import annotations

import ast
import graphlib
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


def test_mypy_is_clean(tmp_path) -> None:
    """The package type-checks ([tool.mypy] in pyproject.toml); a fresh cache each time."""
    if shutil.which("mypy") is None and not Path(sys.executable).with_name("mypy").exists():
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_snakemake_lint_is_clean(tmp_path, snakemake) -> None:
    """Snakemake's linter over the whole workflow (every rule file) finds nothing."""
    result = snakemake(tmp_path, "--lint", config=ROOT / "config.yaml", cores=None, check=False)
    assert result.returncode == 0, result.output[-3000:]
    assert "Traceback" not in result.output  # the workflow was parsed, not skipped
    assert "Lints for" not in result.output, result.output[-3000:]


def _package_modules() -> dict[str, Path]:
    package = ROOT / "glaciermap"
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at the top or inside functions)."""
    modules = _package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from glaciermap.io import sentinel2" imports the module sentinel2.
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "glaciermap.config" in graph["glaciermap.training.commands"]  # the parser works
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
    assert set(order) == set(graph)


def test_every_module_imports_on_its_own() -> None:
    """Every module imports, dependencies first, in a fresh interpreter."""
    order = [
        name  # __main__ runs the command line
        for name in graphlib.TopologicalSorter(import_graph()).static_order()
        if not name.endswith("__main__")
    ]
    code = f"import importlib\nfor name in {order!r}:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
