"""Every server Parley opens answers hostile input with a 4xx and no traceback, and cuts off
slow clients: fuzzed timestamps, JSON nested 100,000 deep, huge numbers, invalid UTF-8,
missing headers, oversize bodies; headers or a body sent byte by byte over a raw socket."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.connectors.facebook.connector import FacebookSource, FacebookSourceConfig
from bot.connectors.http import inbound_limits
from bot.connectors.http.inbound_limits import json_depth, parse_json, parse_timestamp
from bot.connectors.webhook.connector import WebhookSource, WebhookSourceConfig, sign

SECRET = "s3cret-shared-with-zapier"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_NUMBER = b'{"text": ' + b"1" * 5000 + b"}"
DEADLINE = 30.0


def test_timestamps_are_ascii_digits_of_bounded_length() -> None:
    assert parse_timestamp("1764840000") == 1764840000
    assert parse_timestamp(" 1764840000 ") == 1764840000
    for bad in ("²", "١٢٣", "1" * 5000, "-5", "+5", "", "1e9", "12.5", "0x10", "1" * 13):
        assert parse_timestamp(bad) is None, bad


def test_json_depth_is_measured_without_parsing() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(DEEP) == 100_000
    assert parse_json(DEEP) == (None, "JSON nests 100000 levels deep; at most 32 are accepted")
    data, invalid = parse_json(HUGE_NUMBER)
    assert data is None and invalid is not None and invalid.startswith("invalid JSON")
    assert parse_json(b"\xff{}")[1] == "body is not UTF-8 (byte 0)"


@pytest.fixture
async def hook() -> AsyncIterator[str]:
    config = WebhookSourceConfig(type="webhook", name="hooks", port=0, require_timestamp=False)
    source = WebhookSource(config, secret=SECRET)
    await source.start()
    yield f"http://127.0.0.1:{source.port}"
    await source.aclose()


def signed(body: bytes, timestamp: str | None = None) -> dict[bytes, bytes]:
    headers = {b"Content-Type": b"application/json"}
    if timestamp is not None:
        headers[b"X-Parley-Timestamp"] = timestamp.encode()  # raw UTF-8 bytes on the wire
    headers[b"X-Parley-Signature"] = sign(SECRET, body, timestamp).encode()
    return headers


GOOD = json.dumps({"id": "1", "text": "Acme is down"}).encode()
WEBHOOK_CASES: list[tuple[str, bytes, dict[bytes, bytes], int]] = [
    ("superscript timestamp", GOOD, signed(GOOD, "²"), 400),
    ("5000-digit timestamp", GOOD, signed(GOOD, "1" * 5000), 400),
    ("negative timestamp", GOOD, signed(GOOD, "-1764840000"), 400),
    ("arabic-indic timestamp", GOOD, signed(GOOD, "١٧٦٤٨٤٠٠٠٠"), 400),
    ("stale timestamp", GOOD, signed(GOOD, "1"), 401),
    ("100k-deep JSON", DEEP, signed(DEEP), 400),
    ("5000-digit number", HUGE_NUMBER, signed(HUGE_NUMBER), 400),
    ("invalid UTF-8", b'{"text": "\xff\xfe"}', signed(b'{"text": "\xff\xfe"}'), 400),
    ("missing signature", GOOD, {b"Content-Type": b"application/json"}, 401),
    ("missing content type", GOOD, {b"X-Parley-Signature": sign(SECRET, GOOD).encode()}, 415),
    ("oversize body", b"[" + b" " * 300_000 + b"]", signed(b"[]"), 413),
]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [case[1:] for case in WEBHOOK_CASES],
    ids=[case[0] for case in WEBHOOK_CASES],
)
async def test_webhook_fuzz_is_a_4xx_without_traceback(
    hook: str,
    body: bytes,
    headers: dict[bytes, bytes],
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=hook) as http:
            response = await http.post("/webhook", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert "\n" not in response.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
async def meta() -> AsyncIterator[str]:
    config = FacebookSourceConfig.model_validate(
        {
            "type": "facebook",
            "name": "fb",
            "page_id": "1001",
            "base_url": "http://127.0.0.1:9",
            "allow_private": True,
            "webhook": {"port": 0, "max_body_bytes": 256 * 1024},
        }
    )
    source = FacebookSource.create(config, "token", verify_token="v" * 16, app_secret=APP_SECRET)
    assert source.webhook is not None
    await source.webhook.start()
    yield f"http://127.0.0.1:{source.webhook.port}"
    await source.aclose()


@pytest.mark.parametrize(
    ("body", "status"),
    [(DEEP, 400), (HUGE_NUMBER, 400), (b"\xff", 400), (b"[" * 300_000, 413)],
    ids=["100k-deep JSON", "5000-digit number", "invalid UTF-8", "oversize body"],
)
async def test_meta_webhook_fuzz_is_a_4xx_without_traceback(
    meta: str, body: bytes, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)}
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=meta) as http:
            response = await http.post("/meta/facebook", content=body, headers=headers)
            unsigned = await http.post("/meta/facebook", content=b"{}")
    assert response.status_code == status, response.text
    assert unsigned.status_code == 401
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def _closed_after(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sent until it closed the connection, and when it closed."""
    received = await asyncio.wait_for(reader.read(), DEADLINE)
    return received, time.monotonic()


async def test_headers_sent_byte_by_byte_are_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbound_limits, "HEADER_TIMEOUT", 0.5)
    config = WebhookSourceConfig(type="webhook", name="slow", port=0)
    source = WebhookSource(config, secret=SECRET)
    await source.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
    started = time.monotonic()
    closed = asyncio.create_task(_closed_after(reader))
    try:
        for byte in b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
        received, at = await closed
    finally:
        writer.close()
        await source.aclose()
    assert received == b""  # no request was ever complete: the connection is just closed
    assert 0.4 < at - started < DEADLINE


async def test_a_body_that_never_finishes_is_answered_408(
    hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbound_limits, "BODY_TIMEOUT", 0.5)
    port = int(hook.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    writer.write(head + b"Content-Length: 1000\r\n\r\n{")
    await writer.drain()
    try:
        received, _ = await _closed_after(reader)
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 0.5s" in received
