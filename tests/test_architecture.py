"""The core stays platform-agnostic: only bot/frontends may import a chat library."""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

CHAT_LIBRARIES = {"discord", "telegram"}


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_a_chat_library() -> None:
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        if "frontends" in path.relative_to(ROOT / "bot").parts:
            continue
        leaked = _imported_roots(path.read_text(encoding="utf-8")) & CHAT_LIBRARIES
        if leaked:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(leaked)}")
    assert offenders == []


def test_every_module_opens_with_a_docstring() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for folder in ("bot", "cogs")
        for path in (ROOT / folder).rglob("*.py")
        if ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None
    ]
    assert missing == []


def test_architecture_page_names_only_real_paths() -> None:
    """docs/architecture.md walks a mention through modules that exist."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:bot|cogs)/[\w/]+(?:\.py|/))", page))
    assert len(named) > 30
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
