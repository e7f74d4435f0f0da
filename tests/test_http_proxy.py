"""Outbound fetches honour HTTP_PROXY / NO_PROXY: an RSS source fetches through a tiny loopback
proxy (absolute-form GET, as a real HTTP proxy receives it), the address check still applies to
the target, and NO_PROXY goes direct."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.errors import SourceError
from fakes.loopback import serve_app
from tests.helpers import rss_feed

FEED = rss_feed(
    "<item><title>Acme via proxy</title><link>https://news.example/a</link>"
    "<guid>proxied-1</guid></item>"
)


@dataclass
class Proxy:
    """What the proxy was asked for (the request targets) and its URL."""

    url: str = ""
    targets: list[str] = field(default_factory=list)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Proxy) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
    seen.targets.append(f"{method} {target}")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
        + f"Content-Length: {len(FEED)}\r\nConnection: close\r\n\r\n".encode()
        + FEED
    )
    await writer.drain()
    writer.close()


async def _feed(_: web.Request) -> web.Response:
    return web.Response(body=FEED, content_type="application/rss+xml")


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    """A loopback HTTP proxy that answers every absolute-form GET with the feed itself (a test
    may reach nothing beyond loopback, so it forwards nothing)."""
    seen = Proxy()
    server = await asyncio.start_server(lambda r, w: _answer(r, w, seen), "127.0.0.1", 0)
    seen.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield seen


def source(url: str, *, allow_private: bool) -> RssSource:
    return RssSource(RssSourceConfig(type="rss", name="news", url=url, allow_private=allow_private))


async def test_the_feed_is_fetched_through_the_proxy(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # A name this machine cannot resolve (the test guard would fail if it tried): the proxy does.
    feed = source("http://feed.example/alerts.xml", allow_private=True)
    try:
        result = await feed.fetch({})
    finally:
        await feed.aclose()
    assert [item.external_id for item in result.items] == ["proxied-1"]
    assert proxy.targets == ["GET http://feed.example/alerts.xml"]


async def test_the_target_is_still_checked_through_the_proxy(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    for url in ("http://127.0.0.1:9/feed.xml", "http://localhost:9/feed.xml"):
        feed = source(url, allow_private=False)
        try:
            with pytest.raises(SourceError, match=r"loopback address.*allow_private = true"):
                await feed.fetch({})
        finally:
            await feed.aclose()
    assert proxy.targets == []


async def test_no_proxy_goes_direct(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    app = web.Application()
    app.router.add_get("/feed.xml", _feed)
    async with serve_app(app) as base:
        feed = source(f"{base}/feed.xml", allow_private=True)
        try:
            result = await feed.fetch({})
        finally:
            await feed.aclose()
    assert [item.external_id for item in result.items] == ["proxied-1"]
    assert proxy.targets == []
