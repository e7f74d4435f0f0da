"""Bodies are capped once decompressed, while streaming, whatever the layers of encoding:
a real ``gzip, gzip`` bomb served on loopback is refused with a small, measured memory peak."""

from __future__ import annotations

import gzip
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import psutil  # type: ignore[import-untyped]
import pytest
from aiohttp import web

from bot.connectors.hackernews.connector import HackerNewsSource, HackerNewsSourceConfig
from bot.connectors.http.outbound_limits import MAX_BODY_BYTES, MAX_BODY_EXTENSION, guarded_client
from bot.connectors.rss.connector import RssSource, RssSourceConfig
from bot.errors import SourceError
from fakes.loopback import serve_app

MiB = 1024 * 1024
FEED = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
    b"<item><guid>a-1</guid><title>Acme is down</title><description>help</description></item>"
    b"</channel></rss>"
)


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine: the CRC of A+B from CRC(A), CRC(B) and len(B)."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while len2:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def zeros_crc(mebibytes: int) -> int:
    """CRC-32 of ``mebibytes`` MiB of zeros, by doubling (no need to hash gigabytes)."""
    one = zlib.crc32(bytes(MiB))
    result, length, block, block_len = 0, 0, one, MiB
    while mebibytes:
        if mebibytes & 1:
            result = crc32_combine(result, block, block_len) if length else block
            length += block_len
        block = crc32_combine(block, block, block_len)
        block_len *= 2
        mebibytes >>= 1
    return result


def gzip_of_zeros(mebibytes: int) -> bytes:
    """A valid gzip member of ``mebibytes`` MiB of zeros, built from one repeated deflate block
    (each MiB ends with a full flush, so every block after the first is the same bytes)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zero = bytes(MiB)
    first = deflate.compress(zero) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zero) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert block == deflate.compress(zero) + deflate.flush(zlib.Z_FULL_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", zeros_crc(mebibytes), (mebibytes * MiB) & 0xFFFFFFFF)
    return header + first + block * (mebibytes - 1) + deflate.flush() + trailer


def test_the_bomb_builder_makes_valid_gzip() -> None:
    assert gzip.decompress(gzip_of_zeros(5)) == bytes(5 * MiB)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """6-8 KiB on the wire; 3 GiB once both gzip layers are undone."""
    return gzip.compress(gzip_of_zeros(3 * 1024), 9)


def _app(bomb: bytes) -> web.Application:
    async def gzip_gzip(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip, gzip"})

    async def deflate(request: web.Request) -> web.StreamResponse:
        body = zlib.compress(bytes(24 * MiB), 9)
        return web.Response(body=body, headers={"Content-Encoding": "deflate"})

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked, no Content-Length
        await response.prepare(request)
        for _ in range(64):
            await response.write(bytes(MiB))
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(MAX_BODY_BYTES + 1)})
        await response.prepare(request)
        await response.write(b"<rss")
        return response

    async def layered_feed(request: web.Request) -> web.StreamResponse:
        coding = request.match_info["coding"]
        body = {
            "gzip-gzip": (gzip.compress(gzip.compress(FEED)), "gzip, gzip"),
            "deflate": (zlib.compress(FEED), "deflate"),
            "raw-deflate": (zlib.compress(FEED, wbits=-zlib.MAX_WBITS), "deflate"),
            "gzip-identity": (gzip.compress(FEED), "identity, gzip"),
            "br": (FEED, "br"),
        }[coding]
        return web.Response(body=body[0], headers={"Content-Encoding": body[1]})

    app = web.Application()
    app.router.add_get("/bomb", gzip_gzip)
    app.router.add_get("/deflate-bomb", deflate)
    app.router.add_get("/endless", endless)
    app.router.add_get("/declared", declared)
    app.router.add_get("/feed/{coding}", layered_feed)
    return app


@pytest.fixture
async def server(bomb: bytes) -> AsyncIterator[str]:
    async with serve_app(_app(bomb)) as base:
        yield base


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Samples this process's RSS in a thread; yields [baseline, peak] (bytes)."""
    process = psutil.Process()
    seen = [process.memory_info().rss] * 2
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            seen[1] = max(seen[1], process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        seen[1] = max(seen[1], process.memory_info().rss)


def feed(url: str) -> RssSource:
    # Loopback test server: the source must allow private addresses.
    config = RssSourceConfig(type="rss", name="bomb", url=url, timeout=60, allow_private=True)
    return RssSource(config)


async def refusal(source: RssSource) -> str:
    try:
        with pytest.raises(SourceError) as caught:
            await source.fetch({})
    finally:
        await source.aclose()
    return str(caught.value)


async def test_gzip_gzip_bomb_is_refused_with_a_small_memory_peak(server: str, bomb: bytes) -> None:
    assert len(bomb) < 16 * 1024  # the attacker's cost: a few KiB
    with peak_rss() as rss:
        message = await refusal(feed(f"{server}/bomb"))
    assert message == (
        f"rss source 'bomb' ({server}): feed is larger than 16 MB once decompressed; "
        "check that the URL is the right one"
    )
    # The body is kept up to the 16 MB cap; 3 GiB would be inflated without one.
    print(f"bomb={len(bomb)}B peak_rss_delta_mib={(rss[1] - rss[0]) / MiB:.1f}")
    assert rss[1] - rss[0] < 120 * MiB, f"peak grew by {(rss[1] - rss[0]) // MiB} MiB"


@pytest.mark.parametrize("path", ["/deflate-bomb", "/endless", "/declared"])
async def test_other_oversized_bodies_are_refused(server: str, path: str) -> None:
    message = await refusal(feed(server + path))
    assert "feed is larger than 16 MB once decompressed" in message
    assert "\n" not in message


@pytest.mark.parametrize("coding", ["gzip-gzip", "deflate", "raw-deflate", "gzip-identity"])
async def test_layered_encodings_are_decoded(server: str, coding: str) -> None:
    source = feed(f"{server}/feed/{coding}")
    [item] = (await source.fetch({})).items
    await source.aclose()
    assert item.title == "Acme is down"


async def test_an_encoding_parley_cannot_read_is_named(server: str) -> None:
    message = await refusal(feed(f"{server}/feed/br"))
    assert "sent the body as br, which Parley cannot read (it asks for gzip, deflate)" in message


async def test_api_connectors_share_the_cap(server: str) -> None:
    config = HackerNewsSourceConfig(
        type="hackernews", name="hn", queries=["x"], base_url=server, allow_private=True
    )
    source = HackerNewsSource(config)
    source._endpoint = f"{server}/bomb"  # the same bomb behind a JSON API
    try:
        with pytest.raises(SourceError) as caught:
            await source.fetch({})
    finally:
        await source.aclose()
    assert "response is larger than 16 MB once decompressed" in str(caught.value)


async def test_a_stream_may_opt_out_of_the_total_but_not_of_bounded_steps(server: str) -> None:
    """The Mastodon event stream is endless by design: no total, and no piece above 64 KiB."""
    client = guarded_client(timeout=30, allow_private=True)
    total = biggest = 0
    try:
        extensions = {MAX_BODY_EXTENSION: None}
        async with client.stream("GET", f"{server}/bomb", extensions=extensions) as response:
            async for piece in response.aiter_raw():
                total += len(piece)
                biggest = max(biggest, len(piece))
                if total > 2 * MAX_BODY_BYTES:
                    break
    finally:
        await client.aclose()
    assert total > 2 * MAX_BODY_BYTES
    assert biggest <= 64 * 1024
