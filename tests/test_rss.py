"""RssSource against a fake feed server on loopback, and from local files."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot import __version__
from bot.connectors.rss import connector as rss_connector
from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.domain.models import MAX_TEXT_CHARS
from bot.errors import SourceError, SourceRateLimited
from tests.helpers import rss_feed

FIXTURES = Path(__file__).parent / "fixtures"
GOOGLE_ALERTS = (FIXTURES / "google_alerts_feed.xml").read_bytes()
TALKWALKER = (FIXTURES / "talkwalker_alerts.xml").read_bytes()
SECRET = "OPBCI5UQ3FZZB3KO7OUH7LAPOCBZ"
LAST_MODIFIED = "Fri, 04 Jun 2021 16:18:45 GMT"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FeedServer:
    """What the fake server saw, and its base URL."""

    base: str = ""
    requests: list[web.Request] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


async def _google(request: web.Request) -> web.StreamResponse:
    if request.headers.get("If-None-Match") == '"ga-1"':
        return web.Response(status=304, headers={"ETag": '"ga-1"'})
    return web.Response(
        body=GOOGLE_ALERTS, content_type="application/atom+xml", headers={"ETag": '"ga-1"'}
    )


async def _talkwalker(request: web.Request) -> web.StreamResponse:
    if request.headers.get("If-Modified-Since") == LAST_MODIFIED:
        return web.Response(status=304)
    return web.Response(
        body=TALKWALKER,
        content_type="application/rss+xml",
        headers={"Last-Modified": LAST_MODIFIED},
    )


async def _status(request: web.Request) -> web.StreamResponse:
    code = int(request.match_info["code"])
    headers = {"Retry-After": request.query["retry"]} if "retry" in request.query else {}
    return web.Response(status=code, text=f"error {code}", headers=headers)


async def _slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response(body=GOOGLE_ALERTS)


async def _trickle(request: web.Request) -> web.StreamResponse:
    # Each chunk arrives well within a read timeout; the whole never ends.
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(100):
        await response.write(b" ")
        await asyncio.sleep(0.05)
    return response


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked, no Content-Length
    await response.prepare(request)
    await response.write(b'<?xml version="1.0"?><rss version="2.0"><channel><!--')
    chunk = b"x" * 65536
    for _ in range(10_000):  # 640 MB if nobody stops reading
        await response.write(chunk)
    return response


async def _declared_huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": str(1 << 40)})
    await response.prepare(request)
    await response.write(b"<rss")
    return response


async def _raw(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BODIES[request.match_info["name"]])


BODIES = {
    "not-a-feed": b"<html><body><h1>Sign in</h1><p>Please log in",
    "empty-body": b"",
    "broken-tail": rss_feed(
        "<item><guid>ok-1</guid><title>Acme still fine</title>"
        "<description>first item</description></item>"
    ).replace(b"</channel></rss>", b"<item><title>cut off &undefined; </tit"),
    "controls": rss_feed(
        "<item><guid>c-1</guid><title>Acme\x01 \x1b[31mred\x07</title>"
        "<description>line\x00one\x0bline two</description></item>"
    ),
    "big-item": rss_feed(
        "<item><guid>big-1</guid><title>Huge</title><description>"
        + "Acme is great and fine. " * 440_000
        + "</description></item>"
    ),
    "dated": rss_feed(
        "<item><guid>d-1</guid><title>Dated</title><pubDate>not a date</pubDate>"
        "<description>no usable date</description></item>"
        "<item><guid>d-2</guid><title>Updated</title>"
        "<atom:updated xmlns:atom='http://www.w3.org/2005/Atom'>2024-02-03T04:05:06+02:00</atom:updated>"
        "<description>updated only</description></item>"
    ),
    # Bytes that are not valid UTF-8 although the declaration says so.
    "invalid-utf8": (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        b"<item><guid>u-1</guid><title>Caf\xc3\xa9 \xff\xfe Acme</title>"
        b"<description>bytes \xc3\x28 here</description></item></channel></rss>"
    ),
}


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    seen = FeedServer()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.requests.append(request)
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_get(f"/alerts/feeds/{SECRET}", _google)
    app.router.add_get(f"/alerts/rss/{SECRET}", _talkwalker)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/trickle", _trickle)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/declared-huge", _declared_huge)
    app.router.add_get("/raw/{name}", _raw)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen.base = f"http://127.0.0.1:{port}"
    yield seen
    await runner.cleanup()


def http_source(url: str, *, timeout: float = 5.0, name: str = "alerts") -> RssSource:
    config = RssSourceConfig(type="rss", name=name, url=url, timeout=timeout, allow_private=True)
    return RssSource(config)  # allow_private: the fake server is on loopback


async def fetch_error(source: RssSource) -> SourceError:
    try:
        with pytest.raises(SourceError) as caught:
            await source.fetch({})
    finally:
        await source.aclose()
    return caught.value


async def test_google_alerts_feed(server: FeedServer) -> None:
    source = http_source(server.url(f"/alerts/feeds/{SECRET}"), name="google-alerts")
    result = await source.fetch({})
    await source.aclose()
    [item] = result.items
    assert item.source == "google-alerts"
    assert item.platform == "rss"
    assert item.external_id == "tag:google.com,2013:googlealerts/feed:12501224780620368192"
    # The Google wrapper stays in url; canonicalisation happens later in the pipeline.
    assert item.url is not None
    assert item.url.startswith("https://www.google.com/url?rct=j&sa=t&url=https://www.theconcord")
    assert item.title == "This week in Concord history"
    assert item.text == (
        "Samuel Bell, on horseback, from Boscawen to the new State House. ... fences to escape "
        "from the North State Street prison in Concord, Philip Dick, ..."
    )
    assert "<b>" not in item.text and "&nbsp;" not in item.text
    assert item.author.display_name is None and item.author.handle == ""
    assert item.created_at == datetime(2021, 6, 4, 14, 26, 15, tzinfo=UTC)
    assert item.language is None
    assert result.cursor == {"etag": '"ga-1"'}
    request = server.requests[-1]
    assert request.headers["User-Agent"] == f"Parley/{__version__} (+self-hosted mention monitor)"
    assert "If-None-Match" not in request.headers


async def test_etag_gives_304_and_keeps_the_cursor(server: FeedServer) -> None:
    source = http_source(server.url(f"/alerts/feeds/{SECRET}"))
    first = await source.fetch({})
    second = await source.fetch(first.cursor)
    await source.aclose()
    assert second.items == []
    assert second.cursor == first.cursor
    assert server.requests[-1].headers["If-None-Match"] == '"ga-1"'


async def test_talkwalker_rss_feed_and_last_modified(server: FeedServer) -> None:
    source = http_source(server.url(f"/alerts/rss/{SECRET}"), name="talkwalker")
    result = await source.fetch({})
    assert result.cursor == {"last_modified": LAST_MODIFIED}
    first, second, third = result.items
    assert first.external_id == "tw-7c1f0b52e9a14d3c"
    assert first.url == (
        "https://news.example.com/2023/03/14/acme-cloud-outage?utm_source=talkwalker&utm_medium=rss"
    )
    assert first.title == "Acme Cloud outage leaves shops offline for hours"
    assert first.text == (
        "Merchants said the Acme Cloud checkout stopped working on Tuesday morning & support "
        "lines were jammed.\n\nThe company blamed a DNS change."
    )
    assert first.author.display_name == "Jane Reporter"
    assert first.language == "en-us"
    assert first.created_at == datetime(2023, 3, 14, 7, 15, tzinfo=UTC)  # +0100 → UTC
    # No guid: the link is the id. CDATA HTML in title and description becomes text.
    assert second.external_id == "https://blog.example.org/posts/why-acme-cloud/"
    assert second.title == "Why we moved our store to Acme Cloud"
    assert second.text == (
        'A long review of Acme Cloud after six months: fast pages, "fair" pricing, slow email '
        "support.\nWould recommend."
    )
    # Neither guid nor link: a stable hash of title and text.
    assert third.external_id.startswith("sha256:") and len(third.external_id) == 71
    assert third.url is None and third.created_at is None
    again = await source.fetch({})
    assert [i.external_id for i in again.items][2] == third.external_id
    unchanged = await source.fetch(result.cursor)
    await source.aclose()
    assert unchanged.items == [] and unchanged.cursor == result.cursor
    assert server.requests[-1].headers["If-Modified-Since"] == LAST_MODIFIED


@pytest.mark.parametrize("code", [404, 500, 503])
async def test_http_errors_name_the_status_but_not_the_secret(
    server: FeedServer, code: int
) -> None:
    error = await fetch_error(http_source(server.url(f"/status/{code}?token={SECRET}")))
    assert f"HTTP {code}" in str(error)
    assert "'alerts'" in str(error) and server.base in str(error)
    assert SECRET not in str(error) and "/status" not in str(error)
    assert not isinstance(error, SourceRateLimited)


async def test_429_carries_retry_after(server: FeedServer) -> None:
    error = await fetch_error(http_source(server.url("/status/429?retry=120")))
    assert isinstance(error, SourceRateLimited)
    assert error.retry_after == 120.0
    assert "HTTP 429" in str(error) and "retry after 120s" in str(error)


async def test_429_with_an_http_date_or_nothing(server: FeedServer) -> None:
    error = await fetch_error(
        http_source(server.url("/status/429?retry=Wed, 21 Oct 2015 07:28:00 GMT"))
    )
    assert isinstance(error, SourceRateLimited)
    assert error.retry_after == 0.0  # a date in the past: retry now
    error = await fetch_error(http_source(server.url("/status/429")))
    assert isinstance(error, SourceRateLimited) and error.retry_after is None


async def test_slow_server_times_out(server: FeedServer) -> None:
    error = await fetch_error(http_source(server.url(f"/slow?k={SECRET}"), timeout=0.2))
    assert str(error).endswith("timed out after 0.2s")
    assert SECRET not in str(error)


async def test_trickling_server_hits_the_total_deadline(server: FeedServer) -> None:
    started = asyncio.get_running_loop().time()
    error = await fetch_error(http_source(server.url("/trickle"), timeout=0.5))
    assert "timed out after 0.5s" in str(error)
    assert asyncio.get_running_loop().time() - started < 2.0


async def test_oversized_body_is_refused_without_reading_it_all(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rss_connector, "MAX_FEED_BYTES", 1024 * 1024)
    error = await fetch_error(http_source(server.url("/endless")))
    assert "larger than 1 MB" in str(error)
    error = await fetch_error(http_source(server.url("/declared-huge")))
    assert "larger than 1 MB" in str(error)


async def test_connection_refused_does_not_leak_the_path() -> None:
    error = await fetch_error(http_source(f"http://127.0.0.1:9/alerts/rss/{SECRET}", timeout=2))
    assert "request failed" in str(error) or "timed out" in str(error)
    assert SECRET not in str(error)


@pytest.mark.parametrize("name", ["not-a-feed", "empty-body"])
async def test_malformed_feed_without_entries_is_an_error(server: FeedServer, name: str) -> None:
    error = await fetch_error(http_source(server.url(f"/raw/{name}")))
    message = str(error)
    assert message.startswith("rss source 'alerts' (http://127.0.0.1:")
    assert "not a valid RSS/Atom feed" in message
    assert "\n" not in message


async def test_malformed_feed_with_entries_is_accepted_with_a_warning(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    source = http_source(server.url("/raw/broken-tail"))
    with caplog.at_level(logging.WARNING, logger="bot.connectors.rss.connector"):
        result = await source.fetch({})
    await source.aclose()
    assert result.items[0].external_id == "ok-1"
    assert result.items[0].text == "first item"
    assert any("malformed" in r.getMessage() for r in caplog.records)


async def test_invalid_utf8_and_control_characters_never_crash(server: FeedServer) -> None:
    source = http_source(server.url("/raw/invalid-utf8"))
    [broken] = (await source.fetch({})).items
    await source.aclose()
    assert broken.external_id == "u-1"
    assert "Acme" in (broken.title or "")
    broken.text.encode("utf-8")
    source = http_source(server.url("/raw/controls"))
    [controlled] = (await source.fetch({})).items
    await source.aclose()
    assert controlled.title == "Acme [31mred"
    assert controlled.text == "lineone\nline two"


async def test_ten_megabyte_item_is_capped_not_dropped(server: FeedServer) -> None:
    source = http_source(server.url("/raw/big-item"), timeout=30)
    [item] = (await source.fetch({})).items
    await source.aclose()
    assert item.external_id == "big-1"
    assert len(item.text) == MAX_TEXT_CHARS
    assert item.text.startswith("Acme is great and fine. Acme")
    assert item.text.endswith("…")


async def test_dates_fall_back_to_updated_and_bad_ones_are_none(server: FeedServer) -> None:
    source = http_source(server.url("/raw/dated"))
    bad, updated = (await source.fetch({})).items
    await source.aclose()
    assert bad.created_at is None
    assert updated.created_at == datetime(2024, 2, 3, 2, 5, 6, tzinfo=UTC)


async def test_a_given_client_is_used_and_left_open(server: FeedServer) -> None:
    async with httpx.AsyncClient() as client:
        source = RssSource(
            RssSourceConfig(type="rss", name="ga", url=server.url(f"/alerts/feeds/{SECRET}")),
            client=client,
        )
        result = await source.fetch({})
        await source.aclose()
        assert not client.is_closed
        assert len(result.items) == 1
        assert server.requests[-1].headers["User-Agent"].startswith("Parley/")


async def test_an_own_client_is_closed() -> None:
    source = http_source("http://127.0.0.1:9/feed")
    client = source._client
    assert client is not None
    await source.aclose()
    assert client.is_closed


async def test_file_source_reads_and_skips_unchanged_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.xml"
    path.write_bytes(GOOGLE_ALERTS)
    source = RssSource(RssSourceConfig(type="rss", name="local", path=str(path)))
    first = await source.fetch({})
    assert [i.external_id for i in first.items] == [
        "tag:google.com,2013:googlealerts/feed:12501224780620368192"
    ]
    assert set(first.cursor) == {"mtime_ns", "size"}
    unchanged = await source.fetch(first.cursor)
    assert unchanged.items == [] and unchanged.cursor == first.cursor
    path.write_bytes(TALKWALKER)
    os.utime(path, ns=(1, 2))
    changed = await source.fetch(first.cursor)
    assert len(changed.items) == 3 and changed.cursor != first.cursor
    await source.aclose()


async def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "feed.xml"
    source = RssSource(RssSourceConfig(type="rss", name="local", path=str(missing)))
    with pytest.raises(SourceError, match=r"file not found: .*nowhere/feed\.xml"):
        await source.fetch({})


async def test_author_handles_follow_reddit_and_mastodon_conventions(tmp_path: Path) -> None:
    feed = tmp_path / "mixed.xml"
    feed.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>f</id>
<entry><id>r1</id><title>Nimbus sync</title><content type="html">broken</content>
  <author><name>/u/offgrid_pm</name><uri>https://www.reddit.com/user/offgrid_pm</uri></author>
  <link href="https://www.reddit.com/r/x/comments/1/nimbus/"/></entry>
<entry><id>m1</id><title>post</title><content type="html">nimbus rocks</content>
  <author><name>Kat</name></author>
  <link href="https://fosstodon.org/@kat_codes/115566021889413207"/></entry>
<entry><id>w1</id><title>news</title><content type="html">nimbus news</content>
  <link href="https://news.example/nimbus"/></entry>
</feed>""",
        encoding="utf-8",
    )
    source = RssSource(RssSourceConfig(type="rss", name="mixed", path=str(feed)))
    reddit, mastodon, web_page = (await source.fetch({})).items
    assert reddit.author.handle == "offgrid_pm"
    assert reddit.author.profile_url == "https://www.reddit.com/user/offgrid_pm"
    assert mastodon.author.handle == "kat_codes@fosstodon.org"
    assert mastodon.author.display_name == "Kat"
    assert mastodon.author.profile_url == "https://fosstodon.org/@kat_codes"
    assert web_page.author.handle == "" and web_page.author.display_name is None
