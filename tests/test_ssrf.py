"""Sources refuse loopback, private, link-local and metadata addresses, on the first request and
on every redirect hop, unless the source says ``allow_private = true``. Refusals happen before
any connection (the loopback guard in conftest would fail a test that reached beyond)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.connectors.hackernews.connector import HackerNewsSource, HackerNewsSourceConfig
from bot.connectors.http import outbound_limits
from bot.connectors.http.outbound_limits import address_kind
from bot.connectors.mastodon.api import MastodonSourceConfig
from bot.connectors.mastodon.connector import MastodonSource
from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.errors import SourceError
from fakes.loopback import serve_app

FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><guid>s-1</guid><title>Acme</title><description>hi</description></item>"
    b"</channel></rss>"
)
HINT = "set allow_private = true on that source if this is intended"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud-metadata"),
        ("169.254.10.1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("::1", "loopback"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("::", "unspecified"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.5", "private"),
        ("::ffff:169.254.169.254", "cloud-metadata"),
        ("2002:a00:5::1", "private"),  # 6to4 of 10.0.0.5
        ("64:ff9b::a00:5", "private"),  # NAT64 of 10.0.0.5
        ("fd00:ec2::254", "cloud-metadata"),
        ("1.1.1.1", None),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def rss(url: str, *, allow_private: bool = False) -> RssSource:
    config = RssSourceConfig(type="rss", name="news", url=url, allow_private=allow_private)
    return RssSource(config)


async def refusal(source: RssSource | HackerNewsSource | MastodonSource) -> str:
    try:
        with pytest.raises(SourceError) as caught:
            await source.fetch({})
    finally:
        await source.aclose()
    return str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.5/feed", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "is a cloud-metadata address"),
        ("http://[::1]:9/feed", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:9/feed", "is a loopback address"),
        ("http://100.64.1.1/feed", "is a shared (CGNAT) address"),
    ],
)
async def test_a_feed_at_a_private_address_is_refused_before_connecting(
    url: str, expected: str
) -> None:
    message = await refusal(rss(url))
    assert expected in message and message.endswith(HINT)
    assert message.startswith("rss source 'news' (")
    assert "\n" not in message


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A feed, and redirects to wherever ``?to=`` says."""

    async def feed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=FEED, content_type="application/rss+xml")

    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/feed", feed)
    app.router.add_get("/hop", hop)
    async with serve_app(app) as base:
        yield base


async def test_a_hostname_resolving_to_loopback_is_refused(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    message = await refusal(rss(f"http://localhost:{port}/feed"))
    assert "localhost points at a loopback address" in message and message.endswith(HINT)


async def test_allow_private_lets_a_local_feed_and_its_redirects_through(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    local = f"http://localhost:{port}"
    source = rss(f"{local}/hop?to={local}/feed", allow_private=True)
    [item] = (await source.fetch({})).items
    await source.aclose()
    assert item.external_id == "s-1"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud-metadata"),
        ("http://10.0.0.5/admin", "10.0.0.5 is a private address"),
        ("http://[::1]:{port}/feed", "::1 is a loopback address"),
        ("http://[::ffff:10.0.0.5]/x", "::ffff:a00:5 is a private address"),
    ],
)
async def test_every_redirect_hop_is_checked(
    server: str, target: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 stands in for a public feed host; its redirect to a private one is refused."""
    real = outbound_limits.address_kind
    public = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(
        outbound_limits, "address_kind", lambda ip: None if ip == public else real(ip)
    )
    port = server.rsplit(":", 1)[1]
    message = await refusal(rss(f"{server}/hop?to={target.format(port=port)}"))
    assert expected in message and message.endswith(HINT)


async def test_api_connectors_apply_the_same_rule() -> None:
    hn = HackerNewsSource(
        HackerNewsSourceConfig(
            type="hackernews", name="hn", queries=["x"], base_url="http://169.254.169.254"
        )
    )
    assert "cloud-metadata address" in await refusal(hn)
    mastodon = MastodonSource.create(
        MastodonSourceConfig(type="mastodon", name="masto", base_url="http://10.1.2.3"), "token"
    )
    message = await refusal(mastodon)
    assert "10.1.2.3 is a private address" in message and message.endswith(HINT)
