"""Parley starts and stops like a service: real `python -m bot run` processes against the
loopback fake Telegram (and fake Discord).

A refused token is one line and exit status 78; a Telegram that cannot be reached at start is
retried while the sources and the console work, and the chat hears once when it is back; with
Telegram unreachable, SIGTERM ends the process within the shutdown budget and the alert edits it
could not make are stored and made at the next start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from bot.domain.models import utcnow
from bot.frontends.discord.link import REFUSED as DISCORD_REFUSED
from bot.frontends.telegram.link import REFUSED as TELEGRAM_REFUSED
from fakes.discord import APPROVER_ROLE_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from fakes.telegram import FakeTelegram
from tests.conftest import ROOT
from tests.helpers import eventually

TIMEOUT = 60.0  # generous: a loaded 2-core machine takes seconds just to import the bot
TOKEN = "7000000001:AAH-secret-test-token_0123456789abcdef"
CHAT = -1001234567890
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>Acme Cloud is down for me</title><link>https://example.com/acme-1</link>
<guid>acme-1</guid><pubDate>{date}</pubDate>
<description>Is acme down for anyone?</description></item>
</channel></rss>"""


@dataclass
class Worker:
    """A `python -m bot run` process and the files it shares with the test."""

    base: Path
    name: str
    proc: asyncio.subprocess.Process

    @property
    def stderr(self) -> str:
        """What the process logged so far."""
        return (self.base / f"{self.name}.err").read_text(encoding="utf-8", errors="replace")

    @property
    def stdout(self) -> str:
        """What the console printed so far."""
        return (self.base / f"{self.name}.out").read_text(encoding="utf-8", errors="replace")

    async def type(self, line: str) -> None:
        """A console command."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def until(self, condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
        """Wait until ``condition`` holds; fail with the log if it never does."""
        await eventually(
            condition,
            f"{what} ({self.name})",
            TIMEOUT,
            interval=0.05,
            process=self.proc,
            log=lambda: self.stderr,
        )


def free_port() -> int:
    """A loopback port nothing listens on (Telegram 'unreachable' until the fake takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(base: Path) -> dict[str, str]:
    """parley.toml (one brand, a local feed with one matching item) and the environment."""
    (base / "feed.xml").write_text(FEED.format(date=format_datetime(utcnow())), encoding="utf-8")
    (base / "parley.toml").write_text(
        """
[[brands]]
name = "acme"
display_name = "Acme Cloud"

[[brands.rules]]
name = "product"
query = "acme"

[[sources]]
type = "rss"
name = "feed"
path = "feed.xml"
interval = 3600
""",
        encoding="utf-8",
    )
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(base),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PARLEY_CONFIG": str(base / "parley.toml"),
        "PARLEY_DB_PATH": str(base / "parley.db"),
        "PARLEY_PROMPTS_DIR": str(ROOT / "prompts"),
    }


def telegram_env(base: Path, port: int, token: str = TOKEN) -> dict[str, str]:
    """A Telegram frontend on the fake at ``port``, and the console."""
    return {
        **prepare(base),
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{port}",
        "TELEGRAM_ALERT_CHAT_ID": str(CHAT),
        "TELEGRAM_APPROVER_IDS": "111",
        "PARLEY_CONSOLE": "on",
    }


@asynccontextmanager
async def worker(base: Path, name: str, env: dict[str, str]) -> AsyncIterator[Worker]:
    """`python -m bot run`; killed on the way out if still running."""
    with (base / f"{name}.out").open("wb") as out, (base / f"{name}.err").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=base,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
        try:
            yield Worker(base, name, proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def stop(run: Worker) -> float:
    """SIGTERM; the seconds the process took to exit (it must exit 0, without a traceback)."""
    began = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(run.proc.wait(), TIMEOUT)
    took = time.monotonic() - began
    assert code == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    return took


def rows(base: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the worker's database with a connection of the test's own."""
    with sqlite3.connect(base / "parley.db") as db:
        return list(db.execute(sql))


def sent_texts(fake: FakeTelegram) -> list[str]:
    """The text of every sendMessage the fake received."""
    return [c.params["text"] for c in fake.of("sendMessage")]


async def test_a_refused_telegram_token_is_one_line_and_exit_status_78(tmp_path: Path) -> None:
    fake = FakeTelegram(TOKEN)
    await fake.start()
    try:
        env = {**telegram_env(tmp_path, fake.port, "7000000001:wrong"), "PARLEY_LOG_LEVEL": "ERROR"}
        async with worker(tmp_path, "run", env) as run:
            code = await asyncio.wait_for(run.proc.wait(), TIMEOUT)
            assert (code, run.stderr) == (78, TELEGRAM_REFUSED + "\n")
    finally:
        await fake.stop()
    assert rows(tmp_path, "SELECT COUNT(*) FROM mentions") == [(1,)]  # the store was closed


async def test_a_refused_discord_token_is_one_line_and_exit_status_78(tmp_path: Path) -> None:
    fake = FakeDiscord("the-real-token")
    await fake.start()
    try:
        env = {
            **prepare(tmp_path),
            "DISCORD_BOT_TOKEN": "not-the-token",
            "DISCORD_API_BASE_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "DISCORD_GUILD_ID": "1",
            "DISCORD_ALERT_CHANNEL_ID": "2",
            "DISCORD_APPROVER_ROLE_IDS": "3",
            "PARLEY_LOG_LEVEL": "ERROR",
        }
        async with worker(tmp_path, "run", env) as run:
            code = await asyncio.wait_for(run.proc.wait(), TIMEOUT)
            assert (code, run.stderr) == (78, DISCORD_REFUSED + "\n")
    finally:
        await fake.stop()


async def test_telegram_unreachable_at_start_is_retried_and_the_chat_hears_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    fake = FakeTelegram(TOKEN)
    async with worker(tmp_path, "run", telegram_env(tmp_path, port)) as run:
        await run.until(lambda: "cannot reach Telegram" in run.stderr, "a retry")
        # Meanwhile the source was polled and the console answers.
        await run.until(lambda: rows(tmp_path, "SELECT COUNT(*) FROM mentions") == [(1,)], "poll")
        await run.type("pending")
        await run.until(lambda: "#1" in run.stdout, "the console's answer")
        await fake.start(port)
        try:
            await run.until(lambda: len(fake.of("sendMessage")) >= 2, "the alert and the notice")
            texts = sent_texts(fake)
            back = [t for t in texts if "back in touch" in t]
            assert len(back) == 1 and "without Telegram" in back[0], texts
            assert "1 alert queued meanwhile" in back[0], texts
            assert any("Mention #1" in t for t in texts), texts
            await stop(run)
        finally:
            await fake.stop()
    assert "Traceback" not in run.stderr


async def test_stopping_with_telegram_unreachable_is_quick_and_owed_edits_are_made_next_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    fake = FakeTelegram(TOKEN)
    await fake.start(port)
    env = telegram_env(tmp_path, port)
    async with worker(tmp_path, "first", env) as run:
        try:
            await run.until(lambda: bool(fake.of("sendMessage")), "the alert")
        finally:
            await fake.stop()  # Telegram is unreachable from now on
        await run.until(lambda: "lost contact with Telegram" in run.stderr, "the outage")
        await run.type("ignore 1")  # the alert must now say "ignored": an edit it cannot make
        owed = "SELECT mention_id FROM alert_refresh WHERE frontend = 'telegram'"
        await run.until(lambda: rows(tmp_path, owed) == [(1,)], "the owed edit to be stored")
        took = await stop(run)
    assert took < 10.0, f"stopping took {took:.1f} s:\n{run.stderr}"  # budget 4 s + exit
    print(f"shutdown with Telegram unreachable took {took:.2f} s")

    fake = FakeTelegram(TOKEN)
    await fake.start(port)
    try:
        async with worker(tmp_path, "second", env) as again:
            await again.until(lambda: bool(fake.of("editMessageText")), "the owed edit")
            (edit,) = fake.of("editMessageText")
            assert "Ignored" in edit.params["text"] or "ignored" in edit.params["text"]
            await again.until(lambda: rows(tmp_path, owed) == [], "the mark to be cleared")
            await stop(again)
    finally:
        await fake.stop()


@asynccontextmanager
async def hung_model() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An LLM server that takes requests and never answers (a model stuck loading); yields its
    base URL and an event set once a request has arrived."""
    asked = asyncio.Event()
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        asked.set()
        await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", asked
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_stopping_while_a_model_call_hangs_cancels_it_within_the_budget(
    tmp_path: Path,
) -> None:
    async with hung_model() as (base_url, asked):
        env = {
            **prepare(tmp_path),
            "PARLEY_CONSOLE": "on",
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "sk-test",
            "PARLEY_LLM_TIMEOUT": "300",
        }
        async with worker(tmp_path, "run", env) as run:
            await run.until(asked.is_set, "a request to the model")
            took = await stop(run)
    assert took < 10.0, f"stopping took {took:.1f} s:\n{run.stderr}"  # budget 4 s + exit
    # The hung call is the background triage (alerts do not wait for it): dropped at the stop.
    assert "still busy after" not in run.stderr, run.stderr
    print(f"shutdown with the model hanging took {took:.2f} s")


async def test_telegram_lost_later_is_retried_and_owed_edits_are_made_when_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    fake = FakeTelegram(TOKEN)
    await fake.start(port)
    async with worker(tmp_path, "run", telegram_env(tmp_path, port)) as run:
        try:
            await run.until(lambda: bool(fake.of("sendMessage")), "the alert")
        finally:
            await fake.stop()
        await run.until(lambda: "lost contact with Telegram" in run.stderr, "the outage")
        await run.type("ignore 1")
        owed = "SELECT mention_id FROM alert_refresh WHERE frontend = 'telegram'"
        await run.until(lambda: rows(tmp_path, owed) == [(1,)], "the owed edit to be stored")
        fake = FakeTelegram(TOKEN)
        await fake.start(port)
        try:
            await run.until(lambda: bool(fake.of("editMessageText")), "the owed edit")
            await run.until(lambda: rows(tmp_path, owed) == [], "the mark to be cleared")
            back = [t for t in sent_texts(fake) if "back in touch" in t]
            assert len(back) == 1 and "without Telegram." in back[0], sent_texts(fake)
            await stop(run)
        finally:
            await fake.stop()


async def test_discord_unreachable_at_start_is_retried_and_the_channel_hears_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    fake = FakeDiscord("the-real-token")
    env = {
        **prepare(tmp_path),
        "DISCORD_BOT_TOKEN": "the-real-token",
        "DISCORD_API_BASE_URL": f"http://127.0.0.1:{port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway/",
        "DISCORD_GUILD_ID": str(GUILD_ID),
        "DISCORD_ALERT_CHANNEL_ID": str(CHANNEL_ID),
        "DISCORD_APPROVER_ROLE_IDS": str(APPROVER_ROLE_ID),
    }
    async with worker(tmp_path, "run", env) as run:
        await run.until(lambda: "cannot reach Discord" in run.stderr, "a retry")
        await run.until(lambda: rows(tmp_path, "SELECT COUNT(*) FROM mentions") == [(1,)], "poll")
        await fake.start(port)
        try:
            assert fake.api_url == env["DISCORD_API_BASE_URL"]

            def contents() -> list[str]:
                return [str(m.get("content", "")) for m in fake.channel_messages()]

            await run.until(lambda: any("back in touch" in c for c in contents()), "the notice")
            await run.until(lambda: len(fake.channel_messages()) >= 2, "the alert")
            assert sum("back in touch" in c for c in contents()) == 1, contents()
            await stop(run)
        finally:
            await fake.stop()
