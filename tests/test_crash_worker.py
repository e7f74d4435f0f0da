"""Exactly-once posting across a real crash: a `parley run` worker process is SIGKILLed in the
middle of POST /api/v1/statuses on a loopback fake Mastodon, and a second worker on the same
database must settle the reply without posting it twice.

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
from typing import Literal

import pytest
from aiohttp.test_utils import TestServer

from bot.app import build_core
from bot.config import load_config
from bot.domain.models import Actor, Reply
from bot.domain.states import MentionState, ReplyState
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.store import Store
from tests.fake_mastodon import TOKEN, FakeMastodon

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0  # generous: a loaded 2-core machine takes seconds just to import the bot
CM = Actor(platform="console", user_id="cm", display_name="Ana")


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
    test_server = TestServer(server.app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("")).rstrip("/")
    finally:
        server.release.set()  # a request still held must not delay the shutdown
        await test_server.close()


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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not await condition():
        if proc.returncode is not None or loop.time() > deadline:
            how = "timed out" if proc.returncode is None else f"exited with {proc.returncode}"
            pytest.fail(f"{name} {how} waiting for {what}:\n{stderr_of(paths, name)}")
        await asyncio.sleep(0.05)


async def stop_cleanly(proc: asyncio.subprocess.Process, paths: Paths, name: str) -> None:
    """SIGTERM, then the worker must exit 0 without a traceback."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), TIMEOUT)
    log = stderr_of(paths, name)
    assert code == 0, log
    assert "Traceback" not in log and "Fatal Python error" not in log, log


@pytest.mark.parametrize("hold", ["after_store", "before_store"])
async def test_worker_killed_mid_post_then_restarted_posts_exactly_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hold: Literal["after_store", "before_store"],
) -> None:
    server = FakeMastodon()
    parent = server.add_status("@parley is acme down for anyone?", mention=True)

    def replies() -> list[dict[str, object]]:
        return [s for s in server.statuses.values() if s["in_reply_to_id"] == parent["id"]]

    async with serving(server) as base_url:
        paths = prepare(tmp_path, base_url)
        reply = await approve_found_mention(paths, monkeypatch)

        server.hold = hold
        async with worker(paths, "first") as first:

            async def inside_post() -> bool:
                return server.held == 1

            await wait_for(inside_post, "the POST of the reply", first, paths, "first")
            first.kill()  # SIGKILL: nothing runs after this, as in a power cut or OOM kill
            assert await asyncio.wait_for(first.wait(), TIMEOUT) == -signal.SIGKILL
        # "after_store": posted, the answer lost; "before_store": the platform has nothing.
        assert len(replies()) == (1 if hold == "after_store" else 0)
        async with Database.open(paths.db) as db:
            store = Store(db)
            assert (await store.replies.get(reply.id)).state is ReplyState.SENDING
        server.hold = None
        server.release.set()  # the held request ends on a dead connection

        async with worker(paths, "second") as second, Database.open(paths.db) as db:
            store = Store(db)

            async def settled() -> bool:
                return (await store.replies.get(reply.id)).state is ReplyState.SENT

            await wait_for(settled, "the reply to be sent", second, paths, "second")
            await stop_cleanly(second, paths, "second")

            [posted] = replies()
            final = await store.replies.get(reply.id)
            assert final.posted_id == posted["id"] and final.posted_url == posted["url"]
            assert (await store.mentions.get(final.mention_id)).state is MentionState.POSTED
            trail = [e.action for e in await store.audit.trail("reply", reply.id)]

    key = reply.idempotency_key
    assert server.idempotency == {key: posted["id"]}
    if hold == "after_store":
        # Reconciled from /context: the second worker never posted.
        assert server.post_keys == [key]
        assert trail == ["queue", "send", "reconciled"]
    else:
        # Nothing under the parent: re-queued and posted once, with the same key.
        assert server.post_keys == [key, key]
        assert trail == ["queue", "send", "requeue_after_restart", "send", "sent"]
