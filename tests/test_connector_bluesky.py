"""The Bluesky connector against a fake XRPC PDS on loopback (fakes/bluesky.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.app import build_core
from bot.config import ParleyConfig
from bot.connectors.bluesky.connector import (
    BlueskyClient,
    BlueskyPublisher,
    BlueskySource,
    BlueskySourceConfig,
    link_facets,
    post_url,
)
from bot.domain.models import Author, Mention, RawMention, Reply
from bot.domain.states import ReplyState
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited
from bot.settings import Settings
from fakes.bluesky import (
    BOT_DID,
    BOT_HANDLE,
    PASSWORD,
    FakeBluesky,
    make_post,
    sample_post,
    serve_fake_bluesky,
)
from tests.helpers import (
    approve_first_find,
    approved_mention,
    killed_once_stored,
    post_through,
    sending_reply,
)

T0 = "2026-11-20T10:00:00.000Z"
T1 = "2026-11-20T11:00:00.000Z"
T2 = "2026-11-20T12:00:00.000Z"
T3 = "2026-11-20T13:00:00.000Z"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBluesky]:
    async with serve_fake_bluesky() as server:
        yield server


def config(fake: FakeBluesky, **overrides: Any) -> BlueskySourceConfig:
    values: dict[str, Any] = {
        "type": "bluesky",
        "name": "bsky",
        "base_url": fake.url,
        "allow_private": True,  # the fake server is on loopback
        "identifier": BOT_HANDLE,
        "queries": ["parley"],
        **overrides,
    }
    return BlueskySourceConfig.model_validate(values)


@pytest.fixture
async def source(fake: FakeBluesky) -> AsyncIterator[BlueskySource]:
    src = BlueskySource.create(config(fake), PASSWORD)
    yield src
    await src.aclose()


def mention_for(post: dict[str, Any], language: str | None = "en") -> Mention:
    handle = post["author"]["handle"]
    return approved_mention(
        platform="bluesky", source="bsky", external_id=post["uri"],
        url=post_url(post["uri"], handle), handle=handle, text=post["record"]["text"],
        language=language,
    )  # fmt: skip


def reply_for(text: str) -> Reply:
    return sending_reply(text, publisher="bluesky")


def by_id(items: list[RawMention]) -> dict[str, RawMention]:
    return {m.external_id: m for m in items}


# --- configuration and pure helpers -------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    cfg = BlueskySourceConfig(type="bluesky", name="b", identifier="me.bsky.social")
    assert cfg.base_url == "https://bsky.social"
    assert cfg.password_env == "BLUESKY_APP_PASSWORD"
    with pytest.raises(ValidationError):
        BlueskySourceConfig(type="bluesky", name="b", identifier="x", base_url="ftp://x")
    with pytest.raises(ValidationError):
        BlueskySourceConfig(type="bluesky", name="b", identifier="x", page_size=101)


def test_link_facets_use_utf8_byte_offsets() -> None:
    text = "Héllo 👋 see https://parley.dev/docs. Thanks"
    [facet] = link_facets(text)
    raw = text.encode()
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert raw[start:end].decode() == "https://parley.dev/docs"
    assert facet["features"] == [
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://parley.dev/docs"}
    ]
    assert link_facets("no links here") == []


def test_post_url_from_at_uri() -> None:
    uri = sample_post()["uri"]
    assert post_url(uri, "atproto.com") == "https://bsky.app/profile/atproto.com/post/3k43tv4rft22g"
    assert post_url(uri) == (
        "https://bsky.app/profile/did:plc:u5cwb2mwiv2bfq53cjufe6yn/post/3k43tv4rft22g"
    )
    assert post_url("https://example.com") is None


# --- source ------------------------------------------------------------------------------


async def test_first_poll_normalises_posts_with_reach_and_thread_context(
    fake: FakeBluesky, source: BlueskySource
) -> None:
    root = make_post(
        "root1",
        "What do you all use for community replies?",
        T0,
        did="did:plc:bob",
        handle="bob.bsky.social",
    )
    reply = make_post("rep1", "Parley handles that\nnicely", T1, reply_to=root, langs=["fr", "en"])
    fake.posts += [root, reply]
    fake.followers = {"did:plc:alice": 321}
    mention = make_post(
        "men1",
        "@parley.bsky.social hi from Parley fans",
        T2,
        did="did:plc:carol",
        handle="carol.bsky.social",
    )
    fake.posts.append(mention)
    fake.notify(mention, "mention")
    fake.notify(make_post("like1", "liked", T2), "like")

    result = await source.fetch({})

    items = by_id(result.items)
    assert set(items) == {reply["uri"], mention["uri"]}
    got = items[reply["uri"]]
    assert got.platform == "bluesky" and got.source == "bsky"
    assert got.url == "https://bsky.app/profile/alice.bsky.social/post/rep1"
    assert got.author == Author(
        handle="alice.bsky.social",
        display_name="Alice",
        profile_url="https://bsky.app/profile/alice.bsky.social",
        reach=321,
    )
    assert got.text == "Parley handles that\nnicely"
    assert got.language == "fr"
    assert got.created_at == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert got.parent_ref == root["uri"]
    assert got.thread_context == "What do you all use for community replies?"
    assert items[mention["uri"]].author.reach is None
    assert result.cursor == {"q:parley": T2, "notifications": T2}
    [search] = fake.calls_to("app.bsky.feed.searchPosts")
    assert ("sort", "latest") in search and not any(k == "since" for k, _ in search)
    assert len(fake.calls_to("app.bsky.actor.getProfiles")) == 1  # one batch for all authors
    assert sorted(
        v for k, v in fake.calls_to("app.bsky.notification.listNotifications")[0] if k == "reasons"
    ) == ["mention", "quote", "reply"]


async def test_cursor_resumes_after_restart_and_session_is_reused(fake: FakeBluesky) -> None:
    fake.posts.append(make_post("a", "parley one", T1))
    fake.notify(fake.posts[0], "mention")
    first = BlueskySource.create(config(fake), PASSWORD)
    result = await first.fetch({})
    await first.fetch(result.cursor)
    assert fake.sessions == 1  # reused across polls, never re-created
    await first.aclose()

    fake.posts.append(make_post("b", "parley two", T3))
    fake.notify(fake.posts[1], "reply")
    restarted = BlueskySource.create(config(fake), PASSWORD)
    again = await restarted.fetch(result.cursor)
    await restarted.aclose()

    assert ("since", T1) in fake.calls_to("app.bsky.feed.searchPosts")[-1]
    # `since` is inclusive: the boundary post comes again and the store skips it by its id.
    assert {m.external_id for m in again.items} == {fake.posts[0]["uri"], fake.posts[1]["uri"]}
    assert again.cursor == {"q:parley": T3, "notifications": T3}


async def test_known_route_pages_forward_until_since(fake: FakeBluesky) -> None:
    fake.posts += [
        make_post(f"p{i}", f"parley {i}", f"2026-11-20T11:{i:02d}:00.000Z") for i in range(7)
    ]
    src = BlueskySource.create(config(fake, page_size=3, notifications=False), PASSWORD)
    result = await src.fetch({"q:parley": T0})
    await src.aclose()
    assert len(result.items) == 7
    assert len(fake.calls_to("app.bsky.feed.searchPosts")) == 3


async def test_expired_token_is_refreshed_not_recreated(
    fake: FakeBluesky, source: BlueskySource
) -> None:
    fake.posts.append(make_post("a", "parley", T1))
    await source.fetch({})
    fake.expire_token()
    result = await source.fetch({})
    assert len(result.items) == 1
    assert (fake.sessions, fake.refreshes) == (1, 1)


async def test_dead_refresh_token_logs_in_again(fake: FakeBluesky, source: BlueskySource) -> None:
    await source.fetch({})
    fake.expire_token()
    fake.refresh = "revoked"
    await source.fetch({})
    assert fake.sessions == 2


async def test_wrong_app_password_says_so(fake: FakeBluesky) -> None:
    src = BlueskySource.create(config(fake), "wrong-pass-word-here")
    with pytest.raises(CredentialsRejected, match="check BLUESKY_APP_PASSWORD") as info:
        await src.fetch({})
    await src.aclose()
    assert "wrong-pass" not in str(info.value)


async def test_429_with_ratelimit_reset(fake: FakeBluesky, source: BlueskySource) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 90
    fake.fail(
        "app.bsky.feed.searchPosts",
        429,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        {"ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
    )
    with pytest.raises(SourceRateLimited) as info:
        await source.fetch({})
    assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 90
    assert source.rate_limit_remaining == 0


async def test_429_prefers_retry_after(fake: FakeBluesky, source: BlueskySource) -> None:
    fake.fail("app.bsky.notification.listNotifications", 429, {}, {"retry-after": "12"})
    with pytest.raises(SourceRateLimited) as info:
        await source.fetch({})
    assert info.value.retry_after == 12


async def test_5xx_then_recovery(fake: FakeBluesky, source: BlueskySource) -> None:
    fake.posts.append(make_post("a", "parley", T1))
    fake.fail("app.bsky.feed.searchPosts", 502, {"error": "UpstreamFailure"})
    with pytest.raises(SourceError, match="HTTP 502"):
        await source.fetch({})
    result = await source.fetch({})
    assert [m.external_id for m in result.items] == [fake.posts[0]["uri"]]
    assert source.rate_limit_remaining == 2999


async def test_malformed_item_is_skipped_with_a_log_line(
    fake: FakeBluesky, source: BlueskySource, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_post("good", "parley rocks", T1)
    broken = make_post("bad", "parley broken", T2)
    del broken["author"]["handle"]
    fake.posts += [good, broken]
    with caplog.at_level(logging.WARNING, "bot.connectors.bluesky.connector"):
        result = await source.fetch({})
    assert [m.external_id for m in result.items] == [good["uri"]]
    assert "skipped a malformed search result (no author in at://" in caplog.text


async def test_own_posts_are_not_mentions(fake: FakeBluesky, source: BlueskySource) -> None:
    fake.posts.append(make_post("mine", "parley says hi", T1, did=BOT_DID, handle=BOT_HANDLE))
    assert (await source.fetch({})).items == []


async def test_transport_error_is_a_source_error(fake: FakeBluesky) -> None:
    src = BlueskySource.create(config(fake, base_url="http://127.0.0.1:9"), PASSWORD)
    with pytest.raises(SourceError, match="request failed"):
        await src.fetch({})
    await src.aclose()


# --- publisher ---------------------------------------------------------------------------


@pytest.fixture
async def publisher(fake: FakeBluesky) -> AsyncIterator[BlueskyPublisher]:
    client = BlueskyClient(fake.url, BOT_HANDLE, PASSWORD, allow_private=True)
    yield BlueskyPublisher(client)
    await client.aclose()


async def test_publish_threads_under_the_root_with_link_facets(
    fake: FakeBluesky, publisher: BlueskyPublisher
) -> None:
    root = make_post(
        "root", "Anyone tried Parley?", T0, did="did:plc:bob", handle="bob.bsky.social"
    )
    parent = make_post("par", "@parley how do I install it?", T1, reply_to=root)
    fake.posts += [root, parent]
    text = "Hi! Docs are at https://parley.dev/install 🙂"

    result = await publisher.publish(reply_for(text), mention_for(parent, language="en"))

    [body] = fake.created
    record = body["record"]
    assert body["repo"] == BOT_DID and body["collection"] == "app.bsky.feed.post"
    assert record["text"] == text and record["langs"] == ["en"]
    assert record["reply"] == {
        "root": {"uri": root["uri"], "cid": root["cid"]},
        "parent": {"uri": parent["uri"], "cid": parent["cid"]},
    }
    assert record["facets"] == link_facets(text)
    assert datetime.fromisoformat(record["createdAt"]).tzinfo is not None
    assert result.posted_id == f"at://{BOT_DID}/app.bsky.feed.post/3parley00001"
    assert result.url == f"https://bsky.app/profile/{BOT_HANDLE}/post/3parley00001"


async def test_reply_to_a_top_level_post_uses_it_as_root(
    fake: FakeBluesky, publisher: BlueskyPublisher
) -> None:
    top = make_post("top", "parley?", T0)
    fake.posts.append(top)
    await publisher.publish(reply_for("Yes!"), mention_for(top, language=None))
    record = fake.created[0]["record"]
    ref = {"uri": top["uri"], "cid": top["cid"]}
    assert record["reply"] == {"root": ref, "parent": ref}
    assert "langs" not in record and "facets" not in record


async def test_reconcile_after_crash_between_send_and_commit(fake: FakeBluesky) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    reply, mention = reply_for("Thanks for asking!"), mention_for(parent)
    first = BlueskyClient(fake.url, BOT_HANDLE, PASSWORD, allow_private=True)
    await BlueskyPublisher(first).publish(reply, mention)
    await first.aclose()  # the worker dies before the outbox records "sent"

    restarted = BlueskyClient(fake.url, BOT_HANDLE, PASSWORD, allow_private=True)
    publisher = BlueskyPublisher(restarted)
    found = await publisher.reconcile(reply, mention)
    other = await publisher.reconcile(reply_for("A different text"), mention)
    await restarted.aclose()

    assert found is not None
    assert found.posted_id == fake.posts[-1]["uri"]
    assert found.url == f"https://bsky.app/profile/{BOT_HANDLE}/post/3parley00001"
    assert other is None
    assert len(fake.created) == 1


async def test_reconcile_finds_nothing_when_the_send_never_landed(
    fake: FakeBluesky, publisher: BlueskyPublisher
) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    assert await publisher.reconcile(reply_for("hello"), mention_for(parent)) is None
    gone = make_post("gone", "deleted", T0)
    assert await publisher.reconcile(reply_for("hello"), mention_for(gone)) is None


async def test_too_long_reply_is_refused_permanently(
    fake: FakeBluesky, publisher: BlueskyPublisher
) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    accented = "e\u0301"  # one grapheme of two code points
    await publisher.publish(reply_for(accented * 300), mention_for(parent))
    with pytest.raises(PublishError, match="300") as info:
        await publisher.publish(reply_for("x" * 301), mention_for(parent))
    assert info.value.permanent
    with pytest.raises(PublishError, match="3000 bytes") as info:
        await publisher.publish(reply_for("👨‍👩‍👧" * 200), mention_for(parent))
    assert info.value.permanent
    assert len(fake.created) == 1


async def test_deleted_parent_is_permanent(fake: FakeBluesky, publisher: BlueskyPublisher) -> None:
    with pytest.raises(PublishError, match="deleted") as info:
        await publisher.publish(reply_for("hi"), mention_for(make_post("gone", "x", T0)))
    assert info.value.permanent and fake.created == []


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "retry_after"),
    [
        (400, {}, True, None),
        (429, {"retry-after": "30"}, False, 30.0),
        (503, {}, False, None),
    ],
)
async def test_create_record_errors(
    fake: FakeBluesky,
    publisher: BlueskyPublisher,
    status: int,
    headers: dict[str, str],
    permanent: bool,
    retry_after: float | None,
) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    fake.fail(
        "com.atproto.repo.createRecord",
        status,
        {"error": "InvalidRequest", "message": "Invalid record"},
        headers,
    )
    with pytest.raises(PublishError) as info:
        await publisher.publish(reply_for("hi"), mention_for(parent))
    assert info.value.permanent is permanent
    assert info.value.retry_after == retry_after
    assert f"HTTP {status}" in str(info.value)


async def test_bad_password_is_a_permanent_publish_error(fake: FakeBluesky) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    client = BlueskyClient(fake.url, BOT_HANDLE, "nope", allow_private=True)
    with pytest.raises(PublishError, match="check BLUESKY_APP_PASSWORD") as info:
        await BlueskyPublisher(client).publish(reply_for("hi"), mention_for(parent))
    await client.aclose()
    assert info.value.permanent


async def test_publish_transport_error_is_retryable() -> None:
    client = BlueskyClient("http://127.0.0.1:9", BOT_HANDLE, PASSWORD, allow_private=True)
    with pytest.raises(PublishError) as info:
        await BlueskyPublisher(client).publish(reply_for("hi"), mention_for(sample_post()))
    await client.aclose()
    assert not info.value.permanent


def test_client_requires_a_password() -> None:
    with pytest.raises(ValueError, match="BLUESKY_APP_PASSWORD"):
        BlueskyClient("http://127.0.0.1:9", BOT_HANDLE, "")


async def test_outbox_crash_mid_post_then_restart_posts_once(
    fake: FakeBluesky, settings: Settings, config: ParleyConfig
) -> None:
    """Found by the source, approved, the worker killed mid-post, restarted: one reply, sent."""
    fake.posts.append(make_post("m1", "Is Acme down? I want a refund", _recent()))
    fake.hold_after_create = asyncio.Event()
    async with build_core(settings, config) as core:
        src = BlueskySource.create(
            BlueskySourceConfig(
                type="bluesky",
                name="bsky",
                base_url=fake.url,
                allow_private=True,
                identifier=BOT_HANDLE,
                queries=["acme"],
            ),
            PASSWORD,
        )
        post_through(core, "bluesky", BlueskyPublisher(src.client))
        # The offline draft names @alice.bsky.social, which the link check takes for a domain.
        reply = await approve_first_find(core, src, "Sorry! We are looking into it now.")
        # The worker dies after the PDS stored the post, before "sent" is committed.
        await killed_once_stored(core.outbox.send_due(), fake.created_event)
        await src.aclose()
    fake.hold_after_create.set()
    async with build_core(settings, config) as core:
        client = BlueskyClient(fake.url, BOT_HANDLE, PASSWORD, allow_private=True)
        post_through(core, "bluesky", BlueskyPublisher(client))
        await core.outbox.recover()
        await core.outbox.send_due()
        final = await core.store.replies.get(reply.id)
        await client.aclose()
    assert len(fake.created) == 1
    assert final.state is ReplyState.SENT
    assert final.posted_url == f"https://bsky.app/profile/{BOT_HANDLE}/post/3parley00001"


def _recent() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_reconcile_cannot_conclude_on_5xx(
    fake: FakeBluesky, publisher: BlueskyPublisher
) -> None:
    parent = make_post("par", "parley?", T0)
    fake.posts.append(parent)
    fake.fail("app.bsky.feed.getPostThread", 503, {"error": "Unavailable"})
    # An unknown outcome must not read as "not posted", which would send it again.
    with pytest.raises(PublishError) as info:
        await publisher.reconcile(reply_for("hello"), mention_for(parent))
    assert not info.value.permanent
