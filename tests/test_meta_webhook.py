"""Meta webhooks on a Facebook Page source: the hub.challenge handshake, X-Hub-Signature-256,
limits, replays, which events count, and a pushed comment travelling through the real core
into the store (one pipeline and one dedupe with polling)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest

from bot.app import build_core
from bot.config import parse_config
from bot.connectors.facebook.connector import FacebookSource, FacebookSourceConfig
from bot.connectors.webhook.connector import sign
from bot.errors import ConfigError
from bot.pipeline.runner import SourceRunner
from bot.settings import Settings
from fakes.graph import PAGE_ID, PAGE_TOKEN, VERSION, FakeGraph, fixture, serve
from tests.conftest import BASIC_CONFIG

APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "parley-verify-2718"
COMPLAINT = "My invoice is wrong again, Acme!"


def config(url: str, **webhook: Any) -> FacebookSourceConfig:
    return FacebookSourceConfig.model_validate(
        {
            "type": "facebook",
            "name": "fb",
            "page_id": PAGE_ID,
            "base_url": url,
            "allow_private": True,  # the fake Graph API is on loopback
            "api_version": VERSION,
            "webhook": {"port": 0, "max_body_bytes": 4096, **webhook},
        }
    )


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeGraph, FacebookSource, httpx.AsyncClient]]:
    """The fake Graph API with one post and the fixture's comment, and a started source."""
    fake = FakeGraph()
    post = fake.add_post("Our January invoices are out")
    fake.add_comment(post, COMPLAINT)  # ids 104512345678901_1001 / 1001_1002, as the fixture
    async with serve(fake) as url:
        src = FacebookSource.create(
            config(url), PAGE_TOKEN, verify_token=VERIFY_TOKEN, app_secret=APP_SECRET
        )
        assert src.webhook is not None
        await src.webhook.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{src.webhook.port}") as http:
                yield fake, src, http
        finally:
            await src.aclose()


async def deliver(
    http: httpx.AsyncClient, payload: Any, *, secret: str = APP_SECRET
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
    return await http.post("/meta/facebook", content=body, headers=headers)


def feed_event(**value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("graph_webhook_page_feed.json"))
    payload["entry"][0]["changes"][0]["value"].update(value)
    return cast(dict[str, Any], payload)


async def test_verification_echoes_the_challenge_only_for_the_right_token(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    _, _, http = world
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    good = await http.get("/meta/facebook", params=query)
    assert good.status_code == 200 and good.text == "1158201444"
    assert good.headers["Content-Type"].startswith("text/plain")
    bad = await http.get("/meta/facebook", params={**query, "hub.verify_token": "guess"})
    assert bad.status_code == 403 and "1158201444" not in bad.text
    wrong_mode = await http.get("/meta/facebook", params={**query, "hub.mode": "unsubscribe"})
    assert wrong_mode.status_code == 403


async def test_a_signed_comment_event_is_read_and_normalised(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    fake, src, http = world
    response = await deliver(http, fixture("graph_webhook_page_feed.json"))
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    result = await src.fetch({})
    # The first fetch also polls: the same comment found both ways is handed over once.
    (item,) = result.items
    assert (item.external_id, item.platform, item.text) == ("1001_1002", "facebook", COMPLAINT)
    assert item.thread_context == "Our January invoices are out"
    assert item.author.handle == "Dana Customer"
    assert item.url == fake.nodes["1001_1002"]["permalink_url"]
    assert any(r.startswith(f"GET /{VERSION}/1001_1002?") for r in fake.requests)
    assert src.webhook is not None and len(src.webhook.queue) == 1  # until the cursor is saved
    await src.fetch(result.cursor)
    assert len(src.webhook.queue) == 0


async def test_bad_or_missing_signature_is_refused(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    _, src, http = world
    body = json.dumps(fixture("graph_webhook_page_feed.json")).encode()
    wrong = await deliver(http, body, secret="not-the-app-secret-0000000000000")
    assert wrong.status_code == 403
    missing = await http.post(
        "/meta/facebook", content=body, headers={"Content-Type": "application/json"}
    )
    assert missing.status_code == 401
    tampered = await http.post(
        "/meta/facebook",
        content=body.replace(b"wrong again", b"fine now!!!"),
        headers={"X-Hub-Signature-256": sign(APP_SECRET, body)},
    )
    assert tampered.status_code == 403
    assert src.webhook is not None and len(src.webhook.queue) == 0


async def test_a_replayed_delivery_is_queued_once(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    _, src, http = world
    payload = fixture("graph_webhook_page_feed.json")
    assert (await deliver(http, payload)).json()["accepted"] == 1
    assert (await deliver(http, payload)).json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    # The same comment named by a mention event is the same event.
    mention = feed_event()
    mention["entry"][0]["changes"][0] = {
        "field": "mention",
        "value": {"item": "comment", "verb": "add", "comment_id": "1001_1002",
                  "post_id": "104512345678901_1001"},
    }  # fmt: skip
    assert (await deliver(http, mention)).json()["duplicates"] == 1
    assert src.webhook is not None and len(src.webhook.queue) == 1


async def test_size_and_json_are_checked(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    _, src, http = world
    big = feed_event(message="x" * 5000)
    assert (await deliver(http, big)).status_code == 413
    invalid = await deliver(http, b'{"object": "page", "entry": [oops]}')
    assert invalid.status_code == 400 and "invalid JSON" in invalid.json()["error"]
    shapeless = await deliver(http, {"object": "page"})
    assert shapeless.status_code == 400
    assert src.webhook is not None and len(src.webhook.queue) == 0


async def test_edits_removals_other_pages_and_own_comments_are_ignored(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    _, src, http = world
    events = [
        feed_event(verb="edited"),
        feed_event(verb="remove"),
        feed_event(item="reaction", comment_id="1001_1003"),
        feed_event(comment_id="1001_1004", **{"from": {"id": PAGE_ID, "name": "Acme Cloud"}}),
    ]
    other_page = feed_event(comment_id="1001_1005")
    other_page["entry"][0]["id"] = "999999999"
    events.append(other_page)
    malformed = feed_event(comment_id="../me")
    events.append(malformed)
    for event in events:
        response = await deliver(http, event)
        assert response.status_code == 200 and response.json()["accepted"] == 0
    assert src.webhook is not None and len(src.webhook.queue) == 0


async def test_a_page_mention_in_a_post_is_read_as_the_post(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    fake, src, http = world
    await src.fetch({})  # the first poll; polling now waits for its fallback period
    tagged = fake.add_tagged("Acme Cloud lost my files")  # id 100000000000777_1003
    payload = fixture("graph_webhook_page_mention.json")
    assert payload["entry"][0]["changes"][0]["value"]["post_id"] == tagged["id"]
    assert (await deliver(http, payload)).json()["accepted"] == 1
    fake.requests.clear()
    result = await src.fetch({})
    (item,) = result.items
    assert (item.external_id, item.author.handle) == (tagged["id"], "Jo Customer")
    assert item.url == tagged["permalink_url"]
    # Polling is the fallback: this fetch only read the pushed post.
    (only,) = fake.requests
    assert only.startswith(f"GET /{VERSION}/{tagged['id']}?fields=")


async def test_a_comment_deleted_before_it_is_read_is_dropped(
    world: tuple[FakeGraph, FacebookSource, httpx.AsyncClient],
) -> None:
    fake, src, http = world
    await src.fetch({})
    fake.nodes["1001_1002"]["_deleted"] = True
    assert (await deliver(http, fixture("graph_webhook_page_feed.json"))).status_code == 200
    result = await src.fetch({})
    assert result.items == []
    await src.fetch(result.cursor)
    assert src.webhook is not None and len(src.webhook.queue) == 0


def test_short_webhook_secrets_are_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        FacebookSource.create(
            config("http://127.0.0.1:9"), PAGE_TOKEN, verify_token="short", app_secret="abc"
        )
    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "META_WEBHOOK_VERIFY_TOKEN",
        "META_APP_SECRET",
    ]


async def test_a_pushed_comment_reaches_the_store_once_through_the_core(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("META_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
    monkeypatch.setenv("META_WEBHOOK_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setenv("META_APP_SECRET", APP_SECRET)
    fake = FakeGraph()
    post = fake.add_post("Our January invoices are out")
    fake.add_comment(post, COMPLAINT)
    async with serve(fake) as url:
        section = config(url).model_dump(exclude_none=True)
        parley = parse_config({**BASIC_CONFIG, "sources": [section]}, "test.toml")
        async with build_core(settings, parley) as core:
            assert core.review.publishers.name_for("facebook", "fb") == "facebook:fb"
            (runner,) = core.runners
            for restarted in (False, True):
                if restarted:  # a new process: an empty queue and no memory of the event
                    await runner.source.aclose()
                    runner = SourceRunner(
                        FacebookSource.create(
                            config(url), PAGE_TOKEN, verify_token=VERIFY_TOKEN,
                            app_secret=APP_SECRET,
                        ),
                        core.store, core.ingestor, core.alerter, core.bus,
                    )  # fmt: skip
                source = cast(FacebookSource, runner.source)
                assert source.webhook is not None
                await source.webhook.start()
                base = f"http://127.0.0.1:{source.webhook.port}"
                async with httpx.AsyncClient(base_url=base) as http:
                    payload = fixture("graph_webhook_page_feed.json")
                    assert (await deliver(http, payload)).json()["accepted"] == 1
                outcome = await runner.poll_once()
                assert outcome.error is None
                await runner.poll_once()  # acknowledges the stored event
                assert source.webhook.queue.room == source.webhook.config.queue_size
            await runner.source.aclose()
            mentions = await core.store.mentions.newest(None)
    assert [(m.external_id, m.platform, m.brand) for m in mentions] == [
        ("1001_1002", "facebook", "acme")
    ]
    assert mentions[0].thread_context == "Our January invoices are out"
