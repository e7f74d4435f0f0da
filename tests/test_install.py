"""Installs anywhere: the built wheel, installed by the container's own script, runs the demo.

docker/install.sh (the Dockerfile's install step) builds the wheel from a copy of the source tree
and installs it into a fresh venv; `parley demo` then runs from an empty folder, so the default
prompts must come from inside the package. No network: the dependencies the venv needs are the
ones this test environment already has, offered through PYTHONPATH (without Parley itself), and
pip may not use an index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from tests.conftest import ROOT

SOURCE_PARTS = ("bot", "cogs", "prompts", "docker", "pyproject.toml", "setup.py", "MANIFEST.in")


def _copy_source(target: Path) -> Path:
    """The files the Dockerfile copies, without caches (a build never sees the tester's .pyc)."""
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in (*SOURCE_PARTS, "README.md"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=ignore)
        else:
            shutil.copy2(source, target / part)
    return target


def _dependencies_without_parley(target: Path) -> Path:
    """This environment's installed packages, minus Parley's own (editable) install."""
    target.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("parley", "__editable__", "bot", "cogs")):
            (target / entry.name).symlink_to(entry)
    return target


def _env(deps: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI_"))}
    path = f"{Path(sys.executable).parent}{os.pathsep}{keep.get('PATH', '')}"
    return {**keep, "PATH": path, "PYTHONPATH": str(deps), **extra}


def test_built_wheel_runs_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    source = _copy_source(tmp_path / "src")
    deps = _dependencies_without_parley(tmp_path / "deps")
    venv = tmp_path / "venv"
    # PIP_NO_BUILD_ISOLATION=0 means "no build isolation": setuptools comes from deps.
    offline = _env(deps, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    install = subprocess.run(
        ["sh", str(source / "docker" / "install.sh"), str(source), str(venv)],
        capture_output=True,
        text=True,
        env=offline,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import bot.settings as s; print(s.default_prompts_dir())",
        ],
        capture_output=True,
        text=True,
        env=_env(deps),
        cwd=empty,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    demo = subprocess.run(
        [str(venv / "bin" / "parley"), "demo"],
        input="",
        capture_output=True,
        text=True,
        env=_env(deps),
        cwd=empty,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "Traceback" not in demo.stderr
    assert demo.stdout.count("── New mention #") >= 20
    assert "mentions alerted" in demo.stdout
    assert list(empty.iterdir()) == []  # the demo keeps its database in a temporary folder


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_installs_with_the_tested_script_and_runs_as_a_service() -> None:
    lines = _dockerfile()
    runs = [line for line in lines if line.startswith("RUN ")]
    assert any("docker/install.sh /src /opt/parley" in run for run in runs)
    assert not any(re.search(r"\bpip\b", run) for run in runs), "install only via install.sh"
    copied = " ".join(line for line in lines if line.startswith("COPY "))
    for part in SOURCE_PARTS:
        assert part in copied, f"the image build needs {part}"
    assert lines[0].startswith("ARG PYTHON_IMAGE=python:3.11-slim")
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1] not in ("root", "0")
    assert 'VOLUME ["/data"]' in lines
    env = " ".join(line for line in lines if line.startswith("ENV "))
    assert "PARLEY_CONFIG=/data/parley.toml" in env and "PARLEY_DB_PATH=/data/parley.db" in env
    health = next(line for line in lines if line.startswith("HEALTHCHECK "))
    assert health.endswith('CMD ["parley", "status"]')
    assert lines[-1] == 'CMD ["parley", "run"]'


def test_compose_runs_parley_with_an_optional_ollama() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    parley = compose["services"]["parley"]
    assert parley["build"] == "." and "./data:/data" in parley["volumes"][0]
    assert parley["restart"] == "unless-stopped"
    assert "profiles" not in parley
    assert compose["services"]["ollama"]["profiles"] == ["ollama"]
