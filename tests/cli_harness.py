"""Running the `parley` command in tests: as a user would (a subprocess in a clean environment)
or in-process for `check` and `run`, reading what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import EX_CONFIG, main
from tests.conftest import ROOT

BRAND = '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
"""A parley.toml with one brand and one rule: the smallest configuration `check` accepts."""


def parley(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI_"))}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def run_cli(
    command: str, capsys: pytest.CaptureFixture[str], *, dotenv: str = "", toml: str | None = None
) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `parley COMMAND` with this .env and parley.toml."""
    Path(".env").write_text(dotenv, encoding="utf-8")
    if toml is not None:
        Path("parley.toml").write_text(toml, encoding="utf-8")
    code = main([command])
    return code, capsys.readouterr().err.strip().splitlines()


def refused(capsys: pytest.CaptureFixture[str], **files: str) -> list[str]:
    """The problems `check` reports, after asserting `run` refuses with the very same lines."""
    code, lines = run_cli("check", capsys, **files)
    assert code == EX_CONFIG, lines
    assert lines, "check said nothing"
    run_code, run_lines = run_cli("run", capsys, **files)
    assert (run_code, run_lines) == (code, lines)
    return lines
