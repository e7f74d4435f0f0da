"""Parley's Mastodon connector against the real `mastodon-mock` server run as a process
(fakes/mastodon_mock.py): mention notifications, cursor resumption, hashtag timelines,
``v2/search``, replies with ``in_reply_to_id`` and an ``Idempotency-Key``, reconciliation after
a lost answer, and the instance's errors. The customer @dana talks; Parley answers as @acme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.connectors.mastodon.api import MastodonClient, MastodonSourceConfig
from bot.connectors.mastodon.connector import MastodonPublisher, MastodonSource
from bot.domain.models import Mention, RawMention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.errors import PublishError, SourceError, SourceRateLimited
from fakes.mastodon_mock import BRAND, BRAND_TOKEN, CUSTOMER, CUSTOMER_TOKEN, MastodonMock

# The server fixtures (pytest finds fixtures by module attribute): one process per module.


def settings(server: MastodonMock, **overrides: Any) -> MastodonSourceConfig:
    values: dict[str, Any] = {
        "type": "mastodon",
        "name": "masto",
        "base_url": server.base_url,
        "allow_private": True,  # the mock server listens on loopback
    }
    return MastodonSourceConfig.model_validate(values | overrides)


@asynccontextmanager
async def polling(server: MastodonMock, **overrides: Any) -> AsyncIterator[MastodonSource]:
    """Parley's source for the brand account (a new one is a restart: only the cursor stays)."""
    source = MastodonSource.create(settings(server, **overrides), BRAND_TOKEN)
    try:
        yield source
    finally:
        await source.aclose()


@asynccontextmanager
async def answering(
    server: MastodonMock, *, http: httpx.AsyncClient | None = None, **overrides: Any
) -> AsyncIterator[MastodonPublisher]:
    """Parley's publisher for the brand account."""
    config = settings(server, timeout=30.0, **overrides)
    client = MastodonClient(
        config.base_url, BRAND_TOKEN, timeout=config.timeout, client=http, allow_private=True
    )
    try:
        yield MastodonPublisher(config, client)
    finally:
        await client.aclose()


async def first_mention(server: MastodonMock) -> Mention:
    """The one mention the source finds now, as the core stores it (approved)."""
    async with polling(server) as source:
        (item,) = (await source.fetch({})).items
    return stored(item)


def stored(item: RawMention) -> Mention:
    now = datetime.now(UTC)
    values = item.model_dump() | {
        "id": 1,
        "canonical_url": item.url,
        "fetched_at": now,
        "brand": "acme",
        "rule": "any",
        "state": MentionState.APPROVED,
    }
    return Mention.model_validate(values)


def approved(key: str, text: str = "Settings → Export → PDF does it.", **fields: Any) -> Reply:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": 7,
        "mention_id": 1,
        "text": text,
        "publisher": "mastodon",
        "idempotency_key": key,
        "state": ReplyState.SENDING,
        "approved_by": "telegram:@ann",
        "created_at": now - timedelta(seconds=5),
        "updated_at": now,
    }
    return Reply.model_validate(values | fields)


# --- finding mentions ---------------------------------------------------------------------


async def test_first_poll_finds_the_mention_through_mention_notifications(
    mastodon: MastodonMock,
) -> None:
    news = await mastodon.post("We shipped PDF export today.", token=BRAND_TOKEN)
    status = await mastodon.post(
        f"@{BRAND} PDF export fails for me", in_reply_to_id=news["id"], language="en"
    )
    await mastodon.post("Nice weather today, no brand here.")
    # A favourite is a notification too, of another type: types[]=mention leaves it out.
    await mastodon.call("POST", f"/api/v1/statuses/{news['id']}/favourite", CUSTOMER_TOKEN)

    async with polling(mastodon) as source:
        result = await source.fetch({})

    (item,) = result.items
    assert item.platform == "mastodon" and item.source == "masto"
    assert item.external_id == status["id"]
    assert item.url == status["url"]
    assert item.author.handle == CUSTOMER
    assert item.author.display_name == "Dana"
    assert item.author.profile_url == status["account"]["url"]
    assert item.author.reach == 0
    assert item.text == f"@{BRAND} PDF export fails for me"
    assert item.language == "en"
    assert item.created_at is not None
    assert abs(item.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert item.parent_ref == news["id"]
    assert item.thread_context == "We shipped PDF export today."
    assert list(result.cursor) == ["mentions"]
    assert source.rate_limit_remaining is None  # the mock sends no rate-limit headers


async def test_later_poll_resumes_from_the_cursor_and_pages_forward(
    mastodon: MastodonMock,
) -> None:
    first = await mastodon.post(f"@{BRAND} first question")
    async with polling(mastodon) as source:
        result = await source.fetch({})
    assert [m.external_id for m in result.items] == [first["id"]]
    cursor = result.cursor

    later = [(await mastodon.post(f"@{BRAND} question {n}"))["id"] for n in range(2, 7)]
    # A restart: a new source with only the stored cursor, reading two per page.
    async with polling(mastodon, page_size=2) as source:
        resumed = await source.fetch(cursor)
        again = await source.fetch(resumed.cursor)

    assert [m.external_id for m in resumed.items] == later  # only the new ones, oldest first
    assert [m.text for m in resumed.items] == [f"@{BRAND} question {n}" for n in range(2, 7)]
    assert int(resumed.cursor["mentions"]) > int(cursor["mentions"])
    assert again.items == [] and again.cursor == resumed.cursor


async def test_hashtag_timeline_and_search_find_posts_but_not_our_own(
    mastodon: MastodonMock,
) -> None:
    tagged = await mastodon.post("Trying #AcmeCloud for our team notes")
    searched = await mastodon.post("Is acme cloud worth it for a small team?")
    await mastodon.post("#AcmeCloud 2.0 is out: acme cloud rocks", token=BRAND_TOKEN)
    await mastodon.post("#weather is sunny")

    async with polling(
        mastodon, mentions=False, hashtags=["#AcmeCloud"], search_queries=["acme cloud"]
    ) as source:
        result = await source.fetch({})
        tagged_later = await mastodon.post("Back on #acmecloud after a year")
        resumed = await source.fetch(result.cursor)

    assert [m.external_id for m in result.items] == [tagged["id"], searched["id"]]
    assert all(m.author.handle == CUSTOMER for m in result.items)
    assert set(result.cursor) == {"tag:acmecloud", "search:acme cloud"}
    # The hashtag route resumes from its cursor. (mastodon-mock's v2/search ignores min_id and
    # answers every hit again; the core's store keeps each status once.)
    resumed_ids = [m.external_id for m in resumed.items]
    assert resumed_ids[0] == tagged_later["id"] and tagged["id"] not in resumed_ids
    assert resumed.cursor["tag:acmecloud"] == tagged_later["id"]


async def test_poll_errors_from_the_instance_then_recovery(mastodon: MastodonMock) -> None:
    status = await mastodon.post(f"@{BRAND} are you down?")
    notifications = "/api/v1/notifications"
    # Mastodon's X-RateLimit-Reset is an ISO time (the mock's default is epoch seconds); this
    # window refills at once, so the next poll may go ahead.
    reset = {"X-RateLimit-Reset": datetime.now(UTC).isoformat()}
    await mastodon.fault(notifications, {"type": "ratelimit", "headers": reset})
    await mastodon.fault(notifications, {"type": "status", "status": 503})
    async with polling(mastodon) as source:
        with pytest.raises(SourceRateLimited) as limited:
            await source.fetch({})
        assert limited.value.retry_after == 300  # Retry-After
        assert source.rate_limit_remaining == 0
        assert "HTTP 429" in str(limited.value)
        with pytest.raises(SourceError, match="HTTP 503"):
            await source.fetch({})
        recovered = await source.fetch({})
    assert [m.external_id for m in recovered.items] == [status["id"]]

    config = settings(mastodon)
    revoked = MastodonSource.create(config, "revoked-token-abcdef")
    try:
        with pytest.raises(SourceError) as rejected:
            await revoked.fetch({})
    finally:
        await revoked.aclose()
    assert "MASTODON_ACCESS_TOKEN was rejected" in str(rejected.value)
    assert "revoked-token-abcdef" not in str(rejected.value)


# --- answering ----------------------------------------------------------------------------


async def test_reply_goes_under_the_mention_with_its_idempotency_key(
    mastodon: MastodonMock,
) -> None:
    await mastodon.post(f"@{BRAND} how do I export to PDF?", visibility="unlisted", language="en")
    mention = await first_mention(mastodon)

    async with answering(mastodon) as publisher:
        result = await publisher.publish(approved("parley-7-k1"), mention)

    (reply,) = await mastodon.replies_to(mention.external_id)
    assert reply["id"] == result.posted_id and reply["url"] == result.url
    assert result.url is not None and result.url.startswith("http")
    assert reply["account"]["acct"] == BRAND
    assert reply["in_reply_to_id"] == mention.external_id
    assert f"@{CUSTOMER} Settings → Export → PDF does it." in reply["content"]
    assert reply["visibility"] == "unlisted"  # never wider than the mention's own
    assert reply["language"] == "en"
    # The instance stored the key Parley sent: the same key again returns that status.
    same = await mastodon.call(
        "POST",
        "/api/v1/statuses",
        json={"status": "anything else", "in_reply_to_id": mention.external_id},
        headers={"Idempotency-Key": "parley-7-k1"},
    )
    assert same["id"] == result.posted_id
    assert len(await mastodon.replies_to(mention.external_id)) == 1


async def test_one_key_posted_twice_makes_one_status(mastodon: MastodonMock) -> None:
    await mastodon.post(f"@{BRAND} does the API have webhooks?")
    mention = await first_mention(mastodon)
    async with answering(mastodon) as publisher:
        first = await publisher.publish(approved("parley-7-k1"), mention)
        second = await publisher.publish(approved("parley-7-k1"), mention)
        assert second == first
        assert len(await mastodon.replies_to(mention.external_id)) == 1
        # a different approval (another key) is another status: the key, not the text, decides
        other = await publisher.publish(approved("parley-8-k2"), mention)
    assert other.posted_id != first.posted_id
    assert len(await mastodon.replies_to(mention.external_id)) == 2


async def test_reconcile_after_a_lost_answer_finds_the_reply_instead_of_posting_again(
    mastodon: MastodonMock,
) -> None:
    await mastodon.post(f"@{BRAND} sync is stuck at 99%")
    mention = await first_mention(mastodon)
    lost: list[str] = []

    async def lose_the_answer(response: httpx.Response) -> None:
        """The instance posted the status; its answer never reaches Parley."""
        request = response.request
        if request.method == "POST" and request.url.path == "/api/v1/statuses" and not lost:
            lost.append(request.headers["Idempotency-Key"])
            raise httpx.ReadTimeout("connection dropped", request=request)

    reply = approved("parley-9-k1")
    async with (
        httpx.AsyncClient(event_hooks={"response": [lose_the_answer]}) as http,
        answering(mastodon, http=http) as publisher,
    ):
        assert await publisher.reconcile(reply, mention) is None  # nothing posted yet
        with pytest.raises(PublishError) as unknown:
            await publisher.publish(reply, mention)
        assert not unknown.value.permanent and "timed out" in str(unknown.value)
        assert lost == ["parley-9-k1"]

        (posted,) = await mastodon.replies_to(mention.external_id)
        found = await publisher.reconcile(reply, mention)
        assert found is not None
        assert (found.posted_id, found.url) == (posted["id"], posted["url"])
        # a reply approved after that post is not mistaken for it
        later = approved("parley-10-k1", created_at=datetime.now(UTC) + timedelta(minutes=2))
        assert await publisher.reconcile(later, mention) is None
    assert len(await mastodon.replies_to(mention.external_id)) == 1


async def test_instance_refusals_end_the_reply_with_the_reason(mastodon: MastodonMock) -> None:
    await mastodon.post(f"@{BRAND} refund please")
    mention = await first_mention(mastodon)
    # Parley checks the length itself; told the instance allows more, the instance refuses.
    async with answering(mastodon, max_characters=5000) as publisher:
        with pytest.raises(PublishError) as too_long:
            await publisher.publish(approved("k-long", text="x" * 600), mention)
        assert too_long.value.permanent
        assert "text rejected (HTTP 422: Validation failed: Text is too long" in str(too_long.value)

        await mastodon.fault("/api/v1/statuses", {"type": "status", "status": 503}, method="POST")
        with pytest.raises(PublishError) as busy:
            await publisher.publish(approved("k-busy"), mention)
        assert not busy.value.permanent and "HTTP 503" in str(busy.value)

        await mastodon.call("DELETE", f"/api/v1/statuses/{mention.external_id}", CUSTOMER_TOKEN)
        with pytest.raises(PublishError, match="deleted") as gone:
            await publisher.publish(approved("k-gone"), mention)
        assert gone.value.permanent
