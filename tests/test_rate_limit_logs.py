"""A handled 429 logs one warning line, never a traceback: a source (the loopback feed answering
429 + Retry-After), the LLM client (the fake OpenAI server), and the chat libraries' own lines
for a 429 Parley reports itself (the Telegram case runs against the fake Bot API in
tests/test_telegram.py)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from bot.app import Core
from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.frontends.ratelimit_logs import quiet_handled_rate_limits
from bot.pipeline.runner import SourceRunner
from bot.storage.store import Store
from fakes.loopback import serve_app
from fakes.mastodon import FakeMastodon
from fakes.openai import FakeOpenAI, Step
from tests.connectors import mastodon_publisher, mastodon_source
from tests.helpers import approve_first_find, post_through
from tests.llm_harness import draft_call, llm_client


def warnings_only(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every record at WARNING or above; none may carry a traceback."""
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None and r.exc_text is None for r in records), records
    return records


async def _too_many(_: web.Request) -> web.Response:
    return web.Response(status=429, headers={"Retry-After": "30"})


async def test_a_source_told_to_wait_logs_one_line(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    app.router.add_get("/feed.xml", _too_many)
    async with serve_app(app) as base:
        config = RssSourceConfig(
            type="rss", name="news", url=f"{base}/feed.xml", interval=5, allow_private=True
        )
        source = RssSource(config)
        runner = SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus)
        try:
            with caplog.at_level(logging.INFO):
                outcome = await runner.poll_once()
        finally:
            await source.aclose()
    assert outcome.retry_after == 30
    [line] = warnings_only(caplog)
    assert line.getMessage().startswith("source news: rate limited, retrying in 30 s (")


async def test_an_llm_told_to_wait_logs_one_line(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await FakeOpenAI().start()
    try:
        fake.then(Step("status", status=429, headers={"Retry-After": "0"}))
        llm = llm_client(fake, store)
        with caplog.at_level(logging.INFO):
            assert len(await draft_call(llm)) == 2
        await llm.aclose()
    finally:
        await fake.stop()
    [line] = warnings_only(caplog)
    assert line.getMessage() == "LLM: rate limited (HTTP 429), retrying in 0 s"


async def test_a_reply_told_to_wait_logs_one_line(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeMastodon()
    status = server.add_status("@parley is acme down?", mention=True)
    async with serve_app(server.app) as url:
        src = mastodon_source(url)
        poster = mastodon_publisher(url)
        post_through(core, "mastodon", poster)
        try:
            reply = await approve_first_find(core, src, "Sorry! We are looking into it now.")
        finally:
            await src.aclose()
        server.fail_next("/api/v1/statuses", 429, {"Retry-After": "42"})
        with caplog.at_level(logging.INFO):
            await core.outbox.send_due()
        await poster.client.aclose()
    [line] = warnings_only(caplog)
    assert line.getMessage() == (
        f"reply #{reply.id}: rate limited, retrying in 42 s (mastodon: rate limited (HTTP 429))"
    )
    assert status["id"] and server.posts == []


def test_the_chat_libraries_repeat_of_a_handled_429_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_handled_rate_limits()
    quiet_handled_rate_limits()  # installing twice changes nothing
    telegram = logging.getLogger("telegram.ext.AIORateLimiter")
    discord_http = logging.getLogger("discord.http")
    assert len(telegram.filters) == len(discord_http.filters) == 1
    with caplog.at_level(logging.INFO):
        try:
            raise RuntimeError("429")
        except RuntimeError:
            telegram.exception("Rate limit hit after maximum of %d retries", 0)
        discord_http.warning(
            "We are being rate limited. %s %s responded with 429. Timeout of %.2f was too "
            "long, erroring instead.",
            "POST",
            "https://discord.test/api/v10/channels/1/messages",
            45.0,
        )
        discord_http.warning(
            "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
            "POST",
            "https://discord.test/x",
            2.0,
        )
    [kept] = caplog.records
    assert "Retrying in 2.00 seconds" in kept.getMessage()
