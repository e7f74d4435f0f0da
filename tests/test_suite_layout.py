"""The suite's own layout: the fakes import nothing from tests/ (benches share them), and no test
module imports another (what tests share lives in conftest.py, helpers.py and the harnesses)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def _imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports (``from tests import x`` counts as ``tests.x``)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def _offenders(paths: list[Path], forbidden: str) -> list[str]:
    """``path: modules`` for each file importing a module whose name starts with ``forbidden``."""
    found = (
        (path, sorted(m for m in _imported_modules(path) if m.startswith(forbidden)))
        for path in paths
    )
    return [f"{path.relative_to(ROOT)}: {modules}" for path, modules in found if modules]


def test_fakes_and_benches_import_nothing_from_tests() -> None:
    paths = [*(ROOT / "fakes").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    assert _offenders(sorted(paths), "tests") == []


def test_no_test_module_imports_another() -> None:
    assert _offenders(sorted((ROOT / "tests").glob("*.py")), "tests.test_") == []
