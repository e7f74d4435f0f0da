"""Instagram connector against the loopback fake Graph API (fakes/graph.py): comments on
the account's media with watermarks, the ``comments`` and ``mentions`` webhooks, and the
publisher's replies (to comments and to mentions) exactly once across a crash."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from bot.app import build_core
from bot.config import parse_config
from bot.connectors.instagram.connector import (
    InstagramPublisher,
    InstagramSource,
)
from bot.connectors.webhook.connector import sign
from bot.domain.models import Mention, Reply
from bot.errors import CredentialsRejected, PublishError
from bot.settings import Settings
from fakes.graph import (
    IG_TOKEN,
    IG_USER_ID,
    IG_USERNAME,
    VERSION,
    FakeGraph,
    fixture,
    graph_error,
)
from tests.conftest import BASIC_CONFIG
from tests.connectors import instagram_config
from tests.helpers import approved_mention, opened, publish_answer_lost, sending_reply

APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "parley-verify-2718"


def source(url: str, **overrides: Any) -> InstagramSource:
    return InstagramSource.create(instagram_config(url, **overrides), IG_TOKEN)


async def poll(url: str, cursor: dict[str, str] | None = None, **overrides: Any) -> Any:
    async with aclosing(source(url, **overrides)) as src:
        return await src.fetch(cursor or {})


def publisher(url: str, *, timeout: float = 5.0, **overrides: Any) -> InstagramPublisher:
    src = source(url, timeout=timeout, **overrides)  # as in Parley: it shares the client
    return InstagramPublisher(src.config, src.client, name="instagram:ig")


def as_mention(
    external_id: str, text: str, *, url: str | None = None, handle: str = "",
    parent_ref: str | None = None,
) -> Mention:  # fmt: skip
    return approved_mention(
        platform="instagram", source="ig", external_id=external_id, url=url, handle=handle,
        text=text, parent_ref=parent_ref,
    )  # fmt: skip


def comment_mention(comment: dict[str, Any], parent_ref: str | None = None) -> Mention:
    return as_mention(
        comment["id"], comment["text"], handle=comment["username"], parent_ref=parent_ref
    )


def make_reply(text: str = "So sorry! Please DM us your order number.") -> Reply:
    return sending_reply(text, publisher="instagram:ig")


# --- source -------------------------------------------------------------------------------


async def test_first_poll_normalises_comments_and_replies(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    media = fake.add_media("Our new winter collection ❄️")
    top = fake.add_ig_comment(media, "@acmecloud my order never arrived")
    fake.add_ig_comment(top, "Sorry! Checking now.", username=IG_USERNAME, user_id=IG_USER_ID)
    nested = fake.add_ig_comment(top, "still nothing…", username="dana.customer")
    result = await poll(url)
    assert [m.text for m in result.items] == [
        "@acmecloud my order never arrived",
        "still nothing…",
    ]
    first, second = result.items
    assert (first.platform, first.source, first.external_id) == ("instagram", "ig", top["id"])
    assert first.author.handle == "dana.customer"
    assert first.author.profile_url == "https://www.instagram.com/dana.customer/"
    assert first.url == media["permalink"]
    assert first.thread_context == "Our new winter collection ❄️" and first.parent_ref is None
    assert (second.external_id, second.parent_ref) == (nested["id"], top["id"])
    assert second.thread_context == "@acmecloud my order never arrived"
    assert set(result.cursor) == {f"media:{media['id']}"}


async def test_cursor_resumes_after_restart(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    media = fake.add_media("Sale!")
    old = fake.add_ig_comment(media, "nice")
    cursor = (await poll(url)).cursor
    for n in range(7):  # more than one page of 5
        fake.add_ig_comment(media, f"new {n}")
    fake.add_ig_comment(old, "a late reply to an old comment")
    result = await poll(url, cursor)
    assert sorted(m.text for m in result.items) == sorted(
        [f"new {n}" for n in range(7)] + ["a late reply to an old comment"]
    )
    assert (await poll(url, result.cursor)).items == []


async def test_malformed_comments_are_skipped_with_a_log_line(
    graph: tuple[FakeGraph, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = graph
    media = fake.add_media("Hello")
    fake.add_ig_comment(media, "who am I", username="<script>")
    no_time = fake.add_ig_comment(media, "when")
    no_time["timestamp"] = None
    fake.add_ig_comment(media, "acme rocks")
    with caplog.at_level(logging.WARNING):
        result = await poll(url)
    assert [m.text for m in result.items] == ["acme rocks"]
    assert caplog.text.count("skipped a malformed item") == 2


async def test_permission_and_token_errors_name_what_to_fix(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    fake.add_ig_comment(fake.add_media("Hi"), "hello")
    fake.actors[IG_TOKEN].permissions = frozenset({"instagram_basic"})
    with pytest.raises(CredentialsRejected, match="lacks the instagram_manage_comments"):
        await poll(url)
    fake.fail("GET", "/media", 400, graph_error("(#10) Application does not have permission", 10))
    with pytest.raises(CredentialsRejected, match="lacks the instagram_basic permission"):
        await poll(url)
    fake.actors[IG_TOKEN].expired = True
    with pytest.raises(
        CredentialsRejected, match="token in META_IG_ACCESS_TOKEN \\(expired"
    ) as info:
        await poll(url)
    assert IG_TOKEN not in str(info.value)


def test_instagram_login_names_its_own_permissions() -> None:
    login = instagram_config("https://graph.instagram.com")
    assert login.instagram_login
    assert login.permission("comments") == "instagram_business_manage_comments"
    assert instagram_config("https://graph.facebook.com").permission("basic") == "instagram_basic"
    assert login.webhook is None


# --- webhooks -----------------------------------------------------------------------------


@pytest.fixture
async def hooked(
    graph: tuple[FakeGraph, str],
) -> AsyncIterator[tuple[FakeGraph, InstagramSource, httpx.AsyncClient]]:
    fake, url = graph
    src = InstagramSource.create(
        instagram_config(url, webhook={"port": 0}),
        IG_TOKEN,
        verify_token=VERIFY_TOKEN,
        app_secret=APP_SECRET,
    )
    assert src.webhook is not None
    await src.webhook.start()
    await src.fetch({})  # the first poll; polling now waits for its fallback period
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{src.webhook.port}") as http:
            yield fake, src, http
    finally:
        await src.aclose()


async def deliver(http: httpx.AsyncClient, payload: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)}
    return await http.post("/meta/instagram", content=body, headers=headers)


async def test_comment_and_mention_webhooks_are_read_and_normalised(
    hooked: tuple[FakeGraph, InstagramSource, httpx.AsyncClient],
) -> None:
    fake, src, http = hooked
    ours = fake.add_media("Winter collection", media_id="17900000000001001")
    fake.add_ig_comment(ours, "@acmecloud my order never arrived", comment_id="18000000000001002")
    theirs = fake.add_media(
        "Unboxing my haul", owner=("9000077", "lee.haul"), media_id="17900000000009001"
    )
    fake.add_ig_comment(
        theirs, "@acmecloud ships so slowly", username="kim", comment_id="18000000000009002"
    )
    response = await deliver(http, fixture("graph_webhook_instagram.json"))
    assert response.json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    assert (await deliver(http, fixture("graph_webhook_instagram.json"))).json()["duplicates"] == 2
    result = await src.fetch({})
    by_id = {m.external_id: m for m in result.items}
    assert set(by_id) == {"18000000000001002", "mention:17900000000009001:18000000000009002"}
    comment = by_id["18000000000001002"]
    assert comment.author.handle == "dana.customer"
    assert comment.thread_context == "Winter collection" and comment.url == ours["permalink"]
    mention = by_id["mention:17900000000009001:18000000000009002"]
    assert mention.text == "@acmecloud ships so slowly"
    assert mention.thread_context == "Unboxing my haul" and mention.url == theirs["permalink"]
    assert any("mentioned_comment.comment_id" in r for r in fake.requests)


async def test_a_caption_mention_and_the_accounts_own_comment(
    hooked: tuple[FakeGraph, InstagramSource, httpx.AsyncClient],
) -> None:
    fake, src, http = hooked
    theirs = fake.add_media("Loving @acmecloud boots", owner=("9000077", "lee.haul"))
    ours = fake.add_media("Boots")
    own = fake.add_ig_comment(ours, "Thanks all!", username=IG_USERNAME, user_id=IG_USER_ID)
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_USER_ID,
                "time": 1767605400,
                "changes": [
                    {"field": "mentions", "value": {"media_id": theirs["id"]}},
                    {"field": "comments", "value": {"id": own["id"], "text": own["text"]}},
                    {"field": "comments", "value": {"id": "not-an-id"}},
                ],
            }
        ],
    }
    assert (await deliver(http, payload)).json() == {"accepted": 2, "duplicates": 0, "ignored": 1}
    (item,) = (await src.fetch({})).items
    assert (item.external_id, item.author.handle) == (f"mention:{theirs['id']}", "lee.haul")
    assert item.text == "Loving @acmecloud boots"


# --- publisher ----------------------------------------------------------------------------


async def test_replies_go_under_the_top_level_comment(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    media = fake.add_media("Hi")
    top = fake.add_ig_comment(media, "where is my order")
    nested = fake.add_ig_comment(top, "hello??")
    async with opened(publisher(url)) as pub:
        first = await pub.publish(make_reply(), comment_mention(top))
        second = await pub.publish(make_reply("On it!"), comment_mention(nested, top["id"]))
    assert [(c["parent_id"], c["username"]) for c in fake.created] == [
        (top["id"], IG_USERNAME),
        (top["id"], IG_USERNAME),
    ]
    assert fake.created[0]["text"] == "So sorry! Please DM us your order number."
    assert first.posted_id == fake.created[0]["id"] and second.posted_id == fake.created[1]["id"]
    assert any(r.startswith(f"POST /{VERSION}/{top['id']}/replies") for r in fake.requests)


async def test_a_mention_is_answered_through_the_mentions_edge(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    theirs = fake.add_media("Haul", owner=("9000077", "lee.haul"))
    comment = fake.add_ig_comment(theirs, "@acmecloud slow shipping", username="kim")
    mention_id = f"mention:{theirs['id']}:{comment['id']}"
    mention = as_mention(mention_id, comment["text"], url=theirs["permalink"])
    async with opened(publisher(url)) as pub:
        result = await pub.publish(make_reply(), mention)
        found = await pub.reconcile(make_reply(), mention)
    [posted] = fake.created
    assert posted["parent_id"] == comment["id"] and result.url == theirs["permalink"]
    assert any(r.startswith(f"POST /{VERSION}/{IG_USER_ID}/mentions") for r in fake.requests)
    assert found is not None and found.posted_id == posted["id"]


async def test_crash_after_posting_is_reconciled_without_a_second_post(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    top = fake.add_ig_comment(fake.add_media("Hi"), "where is my order")
    mention = comment_mention(top)
    lost = await publish_answer_lost(fake, publisher(url, timeout=0.3), make_reply(), mention)
    assert not lost.permanent
    async with opened(publisher(url)) as restarted:
        found = await restarted.reconcile(make_reply(), mention)
        nothing = await restarted.reconcile(make_reply("a different text"), mention)
    assert found is not None and found.posted_id == fake.created[0]["id"]
    assert nothing is None and len(fake.created) == 1


async def test_publish_failures(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    top = fake.add_ig_comment(fake.add_media("Hi"), "where is my order")
    async with opened(publisher(url)) as pub:
        with pytest.raises(PublishError, match="2200") as too_long:
            await pub.publish(make_reply("x" * 2201), comment_mention(top))
        fake.fail("POST", "/replies", 400, graph_error("(#10) Permission denied", 10))
        with pytest.raises(PublishError, match="instagram_manage_comments") as refused:
            await pub.publish(make_reply(), comment_mention(top))
        top["_deleted"] = True
        with pytest.raises(PublishError, match="deleted") as deleted:
            await pub.publish(make_reply(), comment_mention(top))
    assert too_long.value.permanent and refused.value.permanent and deleted.value.permanent
    assert fake.created == []


async def test_the_core_builds_the_instagram_source_and_publisher(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("META_IG_ACCESS_TOKEN", IG_TOKEN)
    section = {"type": "instagram", "name": "ig", "ig_user_id": IG_USER_ID,
               "base_url": "http://127.0.0.1:9"}  # fmt: skip
    parley = parse_config({**BASIC_CONFIG, "sources": [section]}, "test.toml")
    async with build_core(settings, parley) as core:
        assert core.review.publishers.name_for("instagram", "ig") == "instagram:ig"
        assert [type(r.source).__name__ for r in core.runners] == ["InstagramSource"]
