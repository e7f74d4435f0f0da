"""A real `parley run` worker process against the loopback fake Mastodon, for the crash and
single-writer tests: its files and clean environment, the fake served on loopback, the mention
approved through an in-test core, the worker started, waited on and stopped cleanly.

With no chat token, `parley run` serves the console frontend; its stdin is a pipe the test keeps
open, so the worker runs (sources, outbox) until it is signalled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import build_core
from bot.config import load_config
from bot.domain.models import Reply
from bot.domain.states import MentionState, ReplyState
from bot.settings import Settings
from fakes.loopback import serve_app
from fakes.mastodon import TOKEN, FakeMastodon
from tests.conftest import ROOT
from tests.helpers import CM, eventually

TIMEOUT = 60.0  # generous: a loaded 2-core machine takes seconds just to import the bot


@dataclass
class Paths:
    """The files a worker shares with the test."""

    base: Path
    config: Path
    db: Path

    def env(self) -> dict[str, str]:
        """A clean environment: only what the worker needs, so no real token leaks in."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.base),
            "PYTHONPATH": str(ROOT),  # this checkout, whatever is installed
            "PYTHONUNBUFFERED": "1",
            "PARLEY_CONFIG": str(self.config),
            "PARLEY_DB_PATH": str(self.db),
            "PARLEY_PROMPTS_DIR": str(ROOT / "prompts"),
            "MASTODON_ACCESS_TOKEN": TOKEN,
        }

    def settings(self) -> Settings:
        """The same settings, for the core run inside the test."""
        return Settings(
            _env_file=None,
            parley_config=self.config,
            parley_db_path=self.db,
            parley_prompts_dir=ROOT / "prompts",
        )


def prepare(tmp_path: Path, base_url: str) -> Paths:
    """parley.toml with one brand and a Mastodon source on the fake (polled once an hour)."""
    config = tmp_path / "parley.toml"
    config.write_text(
        f"""
[[brands]]
name = "acme"
display_name = "Acme Cloud"

[[brands.rules]]
name = "product"
query = "acme"

[[sources]]
type = "mastodon"
name = "masto"
base_url = "{base_url}"
interval = 3600
timeout = 30
allow_private = true
""",
        encoding="utf-8",
    )
    return Paths(tmp_path, config, tmp_path / "parley.db")


@asynccontextmanager
async def serving(server: FakeMastodon) -> AsyncIterator[str]:
    """The fake on a loopback port; yields its base URL."""
    async with serve_app(server.app) as url:
        try:
            yield url
        finally:
            server.release.set()  # a request still held must not delay the shutdown


async def approve_found_mention(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Reply:
    """Poll the fake once through the real core, approve the mention it found, close."""
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    settings = paths.settings()
    async with build_core(settings, load_config(paths.config)) as core:
        await core.poll_all_once()
        await core.auto_drafts.drain()  # alerts go out first; their drafts follow
        [mention] = await core.store.mentions.newest(None, limit=10)
        assert mention.platform == "mastodon" and mention.state is MentionState.DRAFTED
        reply = await core.review.approve(mention.id, CM)
    assert reply.state is ReplyState.QUEUED and reply.publisher == "mastodon:masto"
    return reply


@asynccontextmanager
async def worker(paths: Paths, name: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot run` in its own process; killed on the way out if still running."""
    stdout = (paths.base / f"{name}.out").open("wb")
    stderr = (paths.base / f"{name}.err").open("wb")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=paths.base,  # no stray .env or prompts/ from the repository
            env=paths.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
    finally:
        stdout.close()
        stderr.close()


def stderr_of(paths: Paths, name: str) -> str:
    """What a worker logged."""
    return (paths.base / f"{name}.err").read_text(encoding="utf-8", errors="replace")


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    proc: asyncio.subprocess.Process,
    paths: Paths,
    name: str,
) -> None:
    """Poll ``condition`` until it holds; fail with the worker's log if it never does."""
    await eventually(
        condition,
        f"{what} ({name})",
        TIMEOUT,
        interval=0.05,
        process=proc,
        log=lambda: stderr_of(paths, name),
    )


async def stop_cleanly(proc: asyncio.subprocess.Process, paths: Paths, name: str) -> None:
    """SIGTERM, then the worker must exit 0 without a traceback."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), TIMEOUT)
    log = stderr_of(paths, name)
    assert code == 0, log
    assert "Traceback" not in log and "Fatal Python error" not in log, log
