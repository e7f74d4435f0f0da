"""Build hook: the wheel carries the top-level ``prompts/`` folder as ``bot/_prompts``.

Everything else about the package is declared in pyproject.toml. ``prompts/`` stays at the top of
the source tree as the copy people edit; the installed package keeps these defaults so Parley runs
from any folder (bot/settings.py ``Settings.prompts_dir``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildWithPrompts(build_py):
    """``build_py`` that also copies the default prompts into the built package."""

    def run(self) -> None:
        """Build the packages, then add ``bot/_prompts`` (editable installs read prompts/)."""
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "bot" / "_prompts"
            shutil.copytree(PROMPTS, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithPrompts})
