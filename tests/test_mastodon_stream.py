"""Mastodon mentions in real time over the streaming API (SSE): the stream against the loopback
fake's notification stream (fakes/mastodon.py), the source's hand-over and fallback poll,
and one mention streamed by the real mastodon-mock server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from bot.connectors.base import FetchResult
from bot.connectors.mastodon.api import MastodonClient, MastodonSourceConfig
from bot.connectors.mastodon.connector import STREAM_DRAIN_INTERVAL, MastodonSource
from bot.connectors.mastodon.stream import Backoff, MastodonStream, SseEvent, SseParser
from bot.domain.models import RawMention
from bot.errors import CredentialsRejected, SourceError
from fakes.mastodon import TOKEN, FakeMastodon
from fakes.mastodon_mock import BRAND, BRAND_TOKEN, MastodonMock
from tests.helpers import eventually

FAST = Backoff(initial=0.05, maximum=0.2, stable=60.0)
STREAM_LOGGER = "bot.connectors.mastodon.stream"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeMastodon, str]]:
    server = FakeMastodon()
    test_server = TestServer(server.app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield server, str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def config(base_url: str, **overrides: Any) -> MastodonSourceConfig:
    values = {
        "type": "mastodon",
        "name": "masto",
        "base_url": base_url,
        "streaming": True,
        "allow_private": True,  # the fake server is on loopback
    }
    return MastodonSourceConfig.model_validate(values | overrides)


async def stream_a_mention(
    server: FakeMastodon, source: MastodonSource, text: str
) -> dict[str, Any]:
    """Once the source's stream is open, a mention posted and delivered through it."""
    stream = source.stream
    assert stream is not None
    await eventually(lambda: bool(server.streams), "the stream to open")
    delivered = stream.delivered
    status = server.add_status(text, mention=True)
    await eventually(lambda: stream.delivered == delivered + 1, "the mention to be delivered")
    return status


async def handed_over(
    source: MastodonSource, cursor: dict[str, str], within: float = 30.0
) -> FetchResult:
    """The first fetch (with ``cursor``) that returns items."""
    fetched: list[FetchResult] = []

    async def has_items() -> bool:
        fetched.append(await source.fetch(cursor))
        return bool(fetched[-1].items)

    await eventually(has_items, "a fetch to hand items over", within)
    return fetched[-1]


class Streaming:
    """A MastodonStream on the fake with a quick backoff, collecting what it delivers."""

    def __init__(self, base_url: str, *, read_timeout: float = 30.0) -> None:
        self.client = MastodonClient(base_url, TOKEN, timeout=30.0, allow_private=True)
        self.mentions: list[RawMention] = []
        self.stream = MastodonStream(
            self.client,
            config(base_url),
            self.mentions.append,
            backoff=FAST,
            read_timeout=read_timeout,
        )

    async def __aenter__(self) -> Streaming:
        self.stream.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stream.aclose()
        await self.client.aclose()


def test_parser_follows_the_sse_rules() -> None:
    parser = SseParser()
    lines = [":thump", "event: notification", "data: {", "data:}", "id: 7", "", "", "data: x", ""]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [SseEvent("notification", "{\n}"), SseEvent("message", "x")]


def test_streaming_needs_mention_notifications() -> None:
    with pytest.raises(ValidationError, match="set mentions = true"):
        config("https://social.example", mentions=False)
    assert MastodonSource.create(config("https://social.example"), TOKEN).interval == (
        STREAM_DRAIN_INTERVAL
    )
    plain = MastodonSource.create(config("https://social.example", streaming=False), TOKEN)
    assert plain.interval == 120.0 and plain.stream is None


async def test_streamed_mention_is_handed_over_without_polling(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, base_url = fake
    source = MastodonSource.create(config(base_url), TOKEN)
    try:
        assert server.stream_connections == 0  # building the source opened nothing
        first = await source.fetch({})
        assert first.items == []
        await eventually(lambda: bool(server.streams), "the stream to open")
        polls = [r for r in server.requests if r.startswith("GET /api/v1/notifications")]
        status = server.add_status("@parley is acme down?", mention=True)
        result = await handed_over(source, first.cursor)
        got, cursor = result.items, result.cursor
        assert [m.external_id for m in got] == [status["id"]]
        assert got[0].author.handle == "alice@social.example"
        assert got[0].text == "@parley is acme down?"
        # it came by the stream: no poll since the first
        assert [r for r in server.requests if r.startswith("GET /api/v1/notifications")] == polls
        # not stored yet (old cursor): handed over again; stored (new cursor): gone
        assert [m.external_id for m in (await source.fetch(first.cursor)).items] == [status["id"]]
        assert (await source.fetch(cursor)).items == []
    finally:
        await source.aclose()


async def test_heartbeats_other_events_and_malformed_ones_are_not_mentions(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base_url = fake
    caplog.set_level(logging.WARNING, logger=STREAM_LOGGER)
    async with Streaming(base_url) as streaming:
        await eventually(lambda: bool(server.streams), "the stream to open")
        server.send_raw(b":thump\n\n:thump\n\n")
        server.send_event("notification", "{not json")
        server.send_event("notification", json.dumps({"type": "mention", "status": {"id": "1"}}))
        server.send_event("notification", json.dumps({"type": "follow", "account": {}}))
        server.send_event("update", json.dumps({"id": "5"}))
        server.send_event("filters_changed", "undefined")
        status = server.add_status("@parley hello", mention=True)
        await eventually(lambda: bool(streaming.mentions), "a streamed mention")
        assert [m.external_id for m in streaming.mentions] == [status["id"]]
        assert streaming.stream.connections == 1 and streaming.stream.running
    skipped = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(skipped) == 2
    assert "skipped a malformed notification event (JSONDecodeError)" in skipped[0]
    assert "(KeyError)" in skipped[1]


async def test_crlf_framed_events_split_across_chunks(fake: tuple[FakeMastodon, str]) -> None:
    server, base_url = fake
    async with Streaming(base_url) as streaming:
        await eventually(lambda: bool(server.streams), "the stream to open")
        status = server.add_status("@parley split", mention=False)
        payload = json.dumps({"id": "1", "type": "mention", "status": status})
        server.send_raw(b"event: notification\r")
        await asyncio.sleep(0.02)
        server.send_raw(b"\ndata: " + payload.encode() + b"\r")
        await asyncio.sleep(0.02)
        server.send_raw(b"\n\r\n")
        await eventually(lambda: bool(streaming.mentions), "a streamed mention")
        assert [m.text for m in streaming.mentions] == ["@parley split"]


async def test_reconnects_after_the_server_drops_the_stream(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base_url = fake
    caplog.set_level(logging.WARNING, logger=STREAM_LOGGER)
    async with Streaming(base_url) as streaming:
        await eventually(lambda: bool(server.streams), "the stream to open")
        server.drop_streams()
        await eventually(
            lambda: server.stream_connections == 2 and bool(server.streams), "a reconnection"
        )
        status = server.add_status("@parley back again", mention=True)
        await eventually(lambda: bool(streaming.mentions), "a streamed mention")
        assert [m.external_id for m in streaming.mentions] == [status["id"]]
    assert any(
        "the server closed the stream; reconnecting" in r.getMessage() for r in caplog.records
    )


async def test_silent_stream_is_opened_again(fake: tuple[FakeMastodon, str]) -> None:
    server, base_url = fake
    async with Streaming(base_url, read_timeout=0.2) as streaming:
        await eventually(lambda: server.stream_connections >= 2, "a second connection")
        server.send_raw(b":thump\n\n")  # a heartbeat keeps the new one alive
        assert streaming.stream.running and streaming.stream.ended is None


async def test_rate_limited_stream_waits_for_retry_after(fake: tuple[FakeMastodon, str]) -> None:
    server, base_url = fake
    server.fail_next("/api/v1/streaming", 429, {"Retry-After": "1"})
    started = time.monotonic()
    async with Streaming(base_url):
        await eventually(lambda: bool(server.streams), "the stream to open")
    assert time.monotonic() - started >= 0.95  # not the 0.05 s backoff
    assert server.stream_connections == 1


async def test_unexpected_error_is_logged_and_the_stream_restarts(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base_url = fake
    caplog.set_level(logging.WARNING, logger=STREAM_LOGGER)
    delivered: list[str] = []

    def deliver(mention: RawMention) -> None:
        if not delivered:
            delivered.append("boom")
            raise RuntimeError("a bug downstream")
        delivered.append(mention.external_id)

    client = MastodonClient(base_url, TOKEN, timeout=30.0, allow_private=True)
    stream = MastodonStream(client, config(base_url), deliver, backoff=FAST)
    stream.start()
    try:
        await eventually(lambda: bool(server.streams), "the stream to open")
        server.add_status("@parley first", mention=True)
        await eventually(
            lambda: server.stream_connections == 2 and bool(server.streams), "a reconnection"
        )
        second = server.add_status("@parley second", mention=True)
        await eventually(lambda: len(delivered) == 2, "two delivered mentions")
        assert delivered == ["boom", second["id"]] and stream.running
    finally:
        await stream.aclose()
        await client.aclose()
    crashes = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert crashes[0].exc_info is not None and "RuntimeError" in crashes[1].getMessage()


async def test_rejected_token_ends_streaming_and_polling_reports_it(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base_url = fake
    caplog.set_level(logging.WARNING, logger=STREAM_LOGGER)
    source = MastodonSource.create(config(base_url), "revoked-token")
    try:
        with pytest.raises(CredentialsRejected) as first:
            await source.fetch({})
        stream = source.stream
        assert stream is not None
        await eventually(lambda: not stream.running, "the stream to stop")
        message = (
            f"mastodon source 'masto' ({base_url}): the access token in MASTODON_ACCESS_TOKEN "
            "was rejected (expired, revoked or mistyped)"
        )
        assert str(first.value) == message and stream.ended == message
        logged = [r.getMessage() for r in caplog.records if r.name == STREAM_LOGGER]
        assert logged == [message]  # once
        assert source.interval == 120.0  # plain polling from now on
        with pytest.raises(CredentialsRejected, match="was rejected"):
            await source.fetch({})
        assert server.stream_connections == 0 and "revoked-token" not in caplog.text
    finally:
        await source.aclose()


async def test_instance_without_streaming_leaves_polling_alone(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, base_url = fake
    server.fail_next("/api/v1/streaming", 404)
    source = MastodonSource.create(config(base_url), TOKEN)
    try:
        await source.fetch({})
        stream = source.stream
        assert stream is not None
        await eventually(lambda: not stream.running, "the stream to stop")
        assert stream.ended is not None and "offers no stream" in stream.ended
        assert "set streaming = false" in stream.ended
        assert source.interval == 120.0
        status = server.add_status("@parley polled", mention=True)
        result = await source.fetch({})  # polls again at once, no poll_interval wait
        assert [m.external_id for m in result.items] == [status["id"]]
    finally:
        await source.aclose()


async def test_mention_by_stream_and_by_poll_is_one_item(fake: tuple[FakeMastodon, str]) -> None:
    server, base_url = fake
    source = MastodonSource.create(config(base_url), TOKEN)
    try:
        server.fail_next("/api/v1/notifications", 503)
        with pytest.raises(SourceError, match="HTTP 503"):
            await source.fetch({})  # the stream started; the poll stays due
        status = await stream_a_mention(server, source, "@parley twice?")
        polls = len(server.requests)
        result = await source.fetch({})  # streamed, and polled as well
        assert any(r.startswith("GET /api/v1/notifications") for r in server.requests[polls:])
        assert [m.external_id for m in result.items] == [status["id"]]
        assert result.cursor["mentions"] == server.notifications[-1]["id"]
        assert (await source.fetch(result.cursor)).items == []
    finally:
        await source.aclose()


async def test_a_failing_poll_does_not_hold_back_streamed_mentions(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, base_url = fake
    source = MastodonSource.create(config(base_url, hashtags=["acme"]), TOKEN)
    try:
        first = await source.fetch({})
        status = await stream_a_mention(server, source, "@parley is the export broken?")
        source._others_due = 0.0  # the hashtag poll is due now, and fails
        server.fail_next("/api/v1/timelines/tag/acme", 503)
        with caplog.at_level(logging.WARNING):
            result = await source.fetch(first.cursor)
        assert [m.external_id for m in result.items] == [status["id"]]
        assert "poll failed" in caplog.text and "handing over 1 streamed mentions" in caplog.text
        # nothing else to hand over: the still-due poll's failure is reported
        server.fail_next("/api/v1/timelines/tag/acme", 503)
        with pytest.raises(SourceError, match="HTTP 503"):
            await source.fetch(result.cursor)
    finally:
        await source.aclose()


async def test_aclose_stops_the_stream_task(fake: tuple[FakeMastodon, str]) -> None:
    server, base_url = fake
    source = MastodonSource.create(config(base_url), TOKEN)
    await source.fetch({})
    await eventually(lambda: bool(server.streams), "the stream to open")
    stream = source.stream
    assert stream is not None and stream.running
    await source.aclose()
    assert not stream.running
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "mastodon-stream:masto" not in names
    server.add_status("@parley after close", mention=True)  # reaches no one
    await asyncio.sleep(0.05)
    assert server.stream_connections == 1


async def test_mastodon_mock_streams_a_mention(mastodon: MastodonMock) -> None:
    source = MastodonSource.create(config(mastodon.base_url), BRAND_TOKEN)
    try:
        await source.fetch({})
        stream = source.stream
        assert stream is not None
        await eventually(lambda: stream.connections == 1, "the stream to connect")
        status = await mastodon.post(f"@{BRAND} is the API down for anyone else?")
        got = (await handed_over(source, {})).items
        assert [m.external_id for m in got] == [status["id"]]
        assert got[0].author.handle == "dana"
        assert "is the API down for anyone else?" in got[0].text
    finally:
        await source.aclose()
