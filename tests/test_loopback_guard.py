"""The session-wide network guard (tests/conftest.py): loopback works, anything else fails."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from aiohttp import web

from fakes.loopback import serve_app


@pytest.mark.parametrize("address", [("192.0.2.1", 443), ("2001:db8::1", 443, 0, 0)])
def test_connecting_beyond_loopback_fails(address: tuple[object, ...]) -> None:
    family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(AssertionError, match="beyond loopback"):
            sock.connect(address)
        with pytest.raises(AssertionError, match="beyond loopback"):
            sock.connect_ex(address)


def test_datagrams_and_name_lookups_beyond_loopback_fail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(AssertionError, match="beyond loopback"):
            sock.sendto(b"x", ("192.0.2.1", 53))
        with pytest.raises(AssertionError, match="beyond loopback"):
            sock.sendto(b"x", 0, ("192.0.2.1", 53))
    with pytest.raises(AssertionError, match="beyond loopback"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(AssertionError, match="beyond loopback"):
        socket.gethostbyname("example.com")


async def test_async_clients_are_stopped_and_loopback_still_works() -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        assert (await client.get(base_url)).text == "hi"
        with pytest.raises(AssertionError, match="beyond loopback"):
            await client.get("https://example.com/")
        with pytest.raises(AssertionError, match="beyond loopback"):
            await asyncio.open_connection("192.0.2.1", 443)
