"""WebhookSource: its HTTP endpoint on loopback (signatures, limits, errors, replays) and how
its queue feeds the pipeline."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.app import Core
from bot.connectors.webhook.connector import WebhookSource, WebhookSourceConfig, sign
from bot.errors import ConfigError, SourceError
from bot.pipeline.runner import SourceRunner

SECRET = "s3cret-shared-with-zapier"
MENTION: dict[str, Any] = {
    "id": "b24-981",
    "url": "https://forum.example.com/t/notes/981",
    "text": "Has anyone tried <b>Nimbus Notes</b>? Export seems broken.",
    "html": True,
    "title": "Note apps",
    "author": {"handle": "dana", "name": "Dana", "url": "https://forum.example.com/u/dana"},
    "created_at": "2026-11-25T08:30:00+01:00",
    "language": "en_GB",
    "parent": "t-981",
    "context": "Which note app do you use?",
}


def config(**overrides: Any) -> WebhookSourceConfig:
    values: dict[str, Any] = {"type": "webhook", "name": "hooks", "port": 0, **overrides}
    return WebhookSourceConfig.model_validate(values)


@pytest.fixture
async def hook() -> AsyncIterator[WebhookSource]:
    source = WebhookSource(config(max_body_bytes=4096, queue_size=3), secret=SECRET)
    await source.start()
    yield source
    await source.aclose()


@pytest.fixture
async def client(hook: WebhookSource) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook.port}") as http:
        yield http


async def post(
    client: httpx.AsyncClient,
    payload: Any,
    *,
    secret: str = SECRET,
    timestamp: str | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": content_type, "X-Parley-Signature": sign(secret, body, timestamp)}
    if timestamp is not None:
        headers["X-Parley-Timestamp"] = timestamp
    return await client.post("/webhook", content=body, headers=headers)


async def test_good_signature_is_accepted_and_normalised(
    hook: WebhookSource, client: httpx.AsyncClient
) -> None:
    response = await post(client, MENTION)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    result = await hook.fetch({})
    (item,) = result.items
    assert item.source == "hooks" and item.platform == "webhook"
    assert item.external_id == "webhook:b24-981"
    assert item.text == "Has anyone tried Nimbus Notes? Export seems broken."
    assert item.title == "Note apps"
    assert item.author.handle == "dana" and item.author.display_name == "Dana"
    assert item.author.profile_url == "https://forum.example.com/u/dana"
    assert item.created_at == datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
    assert item.language == "en-gb"
    assert (item.parent_ref, item.thread_context) == ("t-981", "Which note app do you use?")


async def test_a_list_with_platforms_and_numeric_ids(
    hook: WebhookSource, client: httpx.AsyncClient
) -> None:
    payload = [
        {"id": 7, "text": "nimbus rocks", "platform": "reddit", "author": {"followers": 1200}},
        {"text": "no id here", "created_at": 1_764_000_000},
    ]
    assert (await post(client, payload)).status_code == 202
    first, second = (await hook.fetch({})).items
    assert (first.platform, first.external_id, first.author.reach) == ("reddit", "reddit:7", 1200)
    assert second.external_id.startswith("webhook:sha256:")
    assert second.created_at == datetime.fromtimestamp(1_764_000_000, UTC)


async def test_bad_or_missing_signature_is_refused(
    hook: WebhookSource, client: httpx.AsyncClient
) -> None:
    response = await post(client, MENTION, secret="another-secret-entirely")
    assert response.status_code == 401
    assert "bad X-Parley-Signature" in response.json()["error"]
    body = json.dumps(MENTION).encode()
    unsigned = await client.post(
        "/webhook", content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert unsigned.json()["error"] == "missing X-Parley-Signature"
    # A valid signature of a different body: the body was tampered with.
    tampered = await client.post(
        "/webhook",
        content=body.replace(b"broken", b"great!"),
        headers={"Content-Type": "application/json", "X-Parley-Signature": sign(SECRET, body)},
    )
    assert tampered.status_code == 401
    assert (await hook.fetch({})).items == []


async def test_replay_is_stored_once(hook: WebhookSource, client: httpx.AsyncClient) -> None:
    assert (await post(client, MENTION)).json() == {"accepted": 1, "duplicates": 0}
    assert (await post(client, MENTION)).json() == {"accepted": 0, "duplicates": 1}
    edited = {**MENTION, "text": "edited later, same id"}
    assert (await post(client, [edited, edited])).json() == {"accepted": 0, "duplicates": 2}
    assert [m.external_id for m in (await hook.fetch({})).items] == ["webhook:b24-981"]


async def test_timestamp_window_refuses_old_replays() -> None:
    source = WebhookSource(config(require_timestamp=True, timestamp_tolerance=60), secret=SECRET)
    await source.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{source.port}") as client:
            now = str(int(time.time()))
            assert (await post(client, MENTION, timestamp=now)).status_code == 202
            old = str(int(time.time()) - 3600)
            stale = await post(client, MENTION, timestamp=old)
            assert stale.status_code == 401 and "tolerance 60s" in stale.json()["error"]
            untimed = await post(client, MENTION)
            assert untimed.status_code == 401
            assert untimed.json()["error"] == "missing X-Parley-Timestamp"
            # The timestamp is signed: moving it forward breaks the signature.
            body = json.dumps(MENTION).encode()
            moved = await client.post(
                "/webhook",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Parley-Timestamp": str(int(time.time())),
                    "X-Parley-Signature": sign(SECRET, body, old),
                },
            )
            assert moved.status_code == 401
    finally:
        await source.aclose()


async def test_oversized_body_is_413(hook: WebhookSource, client: httpx.AsyncClient) -> None:
    big = {**MENTION, "text": "x" * 5000}
    response = await post(client, big)
    assert response.status_code == 413
    assert response.json() == {"error": "body is larger than 4096 bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 1000

    streamed = await client.post(
        "/webhook",
        content=chunks(),
        headers={"Content-Type": "application/json", "X-Parley-Signature": "sha256=00"},
    )
    assert streamed.status_code == 413


async def test_invalid_json_is_400_with_the_position(client: httpx.AsyncClient) -> None:
    response = await post(client, b'{"id": "1", "text": oops}')
    assert response.status_code == 400
    assert response.json()["error"] == (
        "invalid JSON: Expecting value at line 1 column 21 (char 20)"
    )
    latin1 = await post(client, '{"text": "café"}'.encode("latin-1"))
    assert latin1.status_code == 400 and "not UTF-8" in latin1.json()["error"]


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await post(client, MENTION, content_type="text/plain")
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


async def test_schema_errors_name_the_fields(client: httpx.AsyncClient) -> None:
    payload = [
        {"id": "ok", "text": "fine"},
        {"id": "bad", "text": "  ", "url": "ftp://x", "author": {"followers": "many"}},
    ]
    response = await post(client, payload)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert any(p.startswith("[1].text: Value error, must not be blank") for p in problems)
    assert any(p.startswith("[1].url: Value error, must be an http") for p in problems)
    assert any(p.startswith("[1].author.followers:") for p in problems)
    missing = await post(client, {"id": "x"})
    assert missing.json()["problems"] == ["text: Field required"]
    assert (await post(client, "just a string")).status_code == 422
    assert (await post(client, [])).status_code == 422


async def test_full_queue_is_503_with_retry_after(
    hook: WebhookSource, client: httpx.AsyncClient
) -> None:
    payload = [{"id": str(i), "text": f"mention {i}"} for i in range(3)]
    assert (await post(client, payload)).status_code == 202
    full = await post(client, {"id": "late", "text": "one too many"})
    assert full.status_code == 503
    assert full.headers["Retry-After"] == "5"
    assert hook.pending == 3
    # Once the pipeline has stored the queue, the same request goes through.
    result = await hook.fetch({})
    await hook.fetch(result.cursor)
    assert hook.pending == 0
    assert (await post(client, {"id": "late", "text": "one too many"})).status_code == 202


async def test_items_stay_queued_until_the_pipeline_saves_the_cursor(
    hook: WebhookSource, client: httpx.AsyncClient
) -> None:
    await post(client, [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}])
    stored_cursor = {"run": "an-earlier-process", "acked": "9"}
    first = await hook.fetch(stored_cursor)
    assert [m.external_id for m in first.items] == ["webhook:a", "webhook:b"]
    # The pipeline failed before saving first.cursor: the runner passes the old one again.
    again = await hook.fetch(stored_cursor)
    assert [m.external_id for m in again.items] == ["webhook:a", "webhook:b"]
    await post(client, {"id": "c", "text": "third"})
    after_save = await hook.fetch(again.cursor)
    assert [m.external_id for m in after_save.items] == ["webhook:c"]
    assert (await hook.fetch(after_save.cursor)).items == []


async def test_fetch_starts_the_server_and_reports_a_busy_port(hook: WebhookSource) -> None:
    clash = WebhookSource(config(port=hook.port), secret=SECRET)
    with pytest.raises(SourceError, match=f"cannot listen on 127.0.0.1:{hook.port}"):
        await clash.fetch({})
    await clash.aclose()
    lazy = WebhookSource(config(), secret=SECRET)
    try:
        assert (await lazy.fetch({})).items == []
        assert lazy.port not in (None, 0)  # bound on the first fetch
    finally:
        await lazy.aclose()


def test_a_short_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PARLEY_WEBHOOK_SECRET"):
        WebhookSource(config(), secret="short")


async def test_through_the_pipeline_a_replay_after_restart_is_stored_once(core: Core) -> None:
    payload = {"id": "z-1", "text": "acme cloud ate my notes", "created_at": time.time()}
    for _ in range(2):  # the second source is Parley after a restart: nothing in memory
        source = WebhookSource(config(), secret=SECRET)
        runner = SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus)
        try:
            await source.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{source.port}") as client:
                assert (await post(client, payload)).status_code == 202
            outcome = await runner.poll_once()
            assert outcome.error is None and outcome.fetched == 1
            assert source.pending == 1  # stored, acknowledged on the next fetch
            await runner.poll_once()
            assert source.pending == 0
        finally:
            await source.aclose()
    (mention,) = await core.store.mentions.newest(None)
    assert (mention.external_id, mention.brand, mention.platform) == (
        "webhook:z-1",
        "acme",
        "webhook",
    )


async def test_html_with_no_text_is_422(client: httpx.AsyncClient) -> None:
    response = await post(client, [{"text": "ok"}, {"text": "<br><img src=x>", "html": True}])
    assert response.status_code == 422
    assert response.json()["error"] == (
        "invalid mention: [1].text: no text left once HTML is removed"
    )


async def test_closing_with_a_backlog_logs_it(
    hook: WebhookSource, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await post(client, MENTION)
    await hook.aclose()
    assert "stopped with 1 mentions not yet acknowledged" in caplog.text
