"""Mastodon connector against a loopback fake speaking Mastodon's REST wire format
(fakes/mastodon.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.connectors.http.budget import RateBudget
from bot.connectors.mastodon.connector import (
    MastodonSource,
    reply_text,
    status_length,
)
from bot.domain.models import Mention, Reply
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited
from fakes.loopback import serve_app
from fakes.mastodon import OWN_ID, TEMPLATE, TOKEN, FakeMastodon
from tests.connectors import mastodon_config, mastodon_publisher, mastodon_source
from tests.helpers import approved_mention, opened, publish_answer_lost, sending_reply


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeMastodon, str]]:
    server = FakeMastodon()
    async with serve_app(server.app) as url:
        yield server, url


def as_mention(status: dict[str, Any], **overrides: Any) -> Mention:
    values: dict[str, Any] = {"source": "masto", "external_id": status["id"], "url": status["url"]}
    handle = status["account"]["acct"]
    return approved_mention(platform="mastodon", handle=handle, **{**values, **overrides})


def make_reply(text: str = "Thanks! Settings → Export does it.", key: str = "k-1") -> Reply:
    return sending_reply(text, publisher="mastodon", key=key)


# --- source -------------------------------------------------------------------------------


async def test_first_poll_normalises_mentions_tags_and_search(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    parent = server.add_status("Is Acme any good?", acct="bob")
    server.add_status(
        "@parley Acme &amp; export <b>broken</b>", mention=True, reply_to=parent["id"]
    )
    server.add_status("loving #acme", tags=("acme",))
    server.add_status("acme beats the rest")
    async with aclosing(
        mastodon_source(url, hashtags=["#Acme"], search_queries=["acme beats"])
    ) as src:
        result = await src.fetch({})
    texts = [m.text for m in result.items]
    assert texts == ["@parley Acme & export broken", "loving #acme", "acme beats the rest"]
    first = result.items[0]
    assert first.platform == "mastodon" and first.source == "masto"
    assert first.author.handle == "alice@social.example"
    assert first.author.reach == TEMPLATE["account"]["followers_count"]
    assert first.author.profile_url == TEMPLATE["account"]["url"]
    assert first.language == "en" and first.created_at is not None
    assert first.created_at.tzinfo is not None
    assert first.parent_ref == parent["id"]
    assert first.thread_context == "Is Acme any good?"
    assert set(result.cursor) == {"mentions", "tag:acme", "search:acme beats"}
    assert src.rate_limit_remaining is not None and src.rate_limit_remaining < 300


async def test_cursor_resumes_after_restart_and_pages_forward(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    server.add_status("old one", mention=True)
    async with aclosing(mastodon_source(url, page_size=2)) as first:
        cursor = (await first.fetch({})).cursor
    for n in range(5):
        server.add_status(f"new {n}", mention=True)
    async with aclosing(
        mastodon_source(url, page_size=2)
    ) as second:  # a fresh object: as after a restart
        result = await second.fetch(cursor)
        again = await second.fetch(result.cursor)
    assert [m.text for m in result.items] == [f"new {n}" for n in range(5)]
    assert again.items == []
    assert any("min_id=" in r for r in server.requests)


async def test_own_posts_and_malformed_items_are_skipped(
    fake: tuple[FakeMastodon, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = fake
    server.add_status("our own #acme reply", tags=("acme",), account_id=OWN_ID, acct="parley")
    broken = server.add_status("broken #acme", tags=("acme",))
    del broken["account"]
    server.add_status("fine #acme", tags=("acme",))
    src = mastodon_source(url, mentions=False, hashtags=["acme"])
    with caplog.at_level(logging.WARNING):
        async with aclosing(src):
            result = await src.fetch({})
    assert [m.text for m in result.items] == ["fine #acme"]
    assert "skipped malformed status" in caplog.text
    assert result.cursor["tag:acme"] == max(server.statuses, key=int)


async def test_a_token_without_read_search_is_told_which_scope_to_add(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    server.fail_next("/api/v2/search", 403)
    async with aclosing(mastodon_source(url, mentions=False, search_queries=["acme"])) as src:
        with pytest.raises(SourceError, match="search needs the read:search scope"):
            await src.fetch({})


async def test_429_with_reset_headers_raises_rate_limited(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    reset = (datetime.now(UTC) + timedelta(seconds=90)).isoformat()
    server.fail_next(
        "/api/v1/notifications", 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    )
    async with aclosing(mastodon_source(url)) as src:
        with pytest.raises(SourceRateLimited) as info:
            await src.fetch({})
    assert info.value.retry_after is not None and 80 < info.value.retry_after <= 90
    assert TOKEN not in str(info.value)


async def test_low_budget_stops_polling_before_the_wall(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    server.add_status("#acme", tags=("acme",))
    server.remaining = 13
    async with aclosing(
        mastodon_source(url, hashtags=["acme", "other"], rate_limit_reserve=10)
    ) as src:
        result = await src.fetch({"mentions": "1"})
    # verify_credentials, mentions and #acme spend 3 calls down to the reserve: "other" waits.
    assert "tag:acme" in result.cursor and "tag:other" not in result.cursor
    assert not any("/tag/other" in r for r in server.requests)


async def test_5xx_then_recovery_keeps_the_cursor(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    server.add_status("before", mention=True)
    async with aclosing(mastodon_source(url)) as src:
        cursor = (await src.fetch({})).cursor
        server.add_status("during outage", mention=True)
        server.fail_next("/api/v1/notifications", 503)
        with pytest.raises(SourceError, match="HTTP 503"):
            await src.fetch(cursor)
        result = await src.fetch(cursor)
    assert [m.text for m in result.items] == ["during outage"]


async def test_revoked_token_says_so_without_leaking_it(fake: tuple[FakeMastodon, str]) -> None:
    _, url = fake
    async with aclosing(MastodonSource.create(mastodon_config(url), "wrong-token")) as src:
        with pytest.raises(CredentialsRejected, match="MASTODON_ACCESS_TOKEN was rejected") as info:
            await src.fetch({})
    assert "wrong-token" not in str(info.value)


def test_config_validates_tags_and_url() -> None:
    cfg = mastodon_config("https://m.example/", hashtags=["#Acme_1"])
    assert cfg.base_url == "https://m.example" and cfg.hashtags == ["Acme_1"]
    with pytest.raises(ValueError, match="hashtags"):
        mastodon_config("https://m.example", hashtags=["two words"])
    with pytest.raises(ValueError, match="base_url"):
        mastodon_config("m.example")


# --- publisher ----------------------------------------------------------------------------


async def test_publish_replies_with_mention_key_and_narrowest_visibility(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True, visibility="unlisted")
    async with opened(mastodon_publisher(url, visibility="public")) as pub:
        result = await pub.publish(make_reply(), as_mention(status, language="de"))
    [post] = server.posts
    assert post["in_reply_to_id"] == status["id"]
    assert post["visibility"] == "unlisted"
    assert post["language"] == "de"
    assert post["content"] == "<p>@alice@social.example Thanks! Settings → Export does it.</p>"
    assert result.posted_id == post["id"] and result.url == post["url"]
    assert server.idempotency == {"k-1": post["id"]}


async def test_a_status_relayed_by_the_webhook_is_found_by_its_url(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    # another tool pushed it with the id it has on *its* instance: only the URL is shared
    relayed = as_mention(status, source="inbox", external_id="mastodon:555")
    lost = as_mention(status, source="inbox", external_id="mastodon:556", url=None)
    async with opened(mastodon_publisher(url)) as pub:
        await pub.publish(make_reply(), relayed)
        with pytest.raises(PublishError, match="without its URL") as info:
            await pub.publish(make_reply(key="k-2"), lost)
    [post] = server.posts
    assert post["in_reply_to_id"] == status["id"]
    assert info.value.permanent


async def test_crash_between_send_and_commit_posts_once(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    mention = as_mention(status)
    # The post lands but the answer never arrives: outcome unknown.
    lost = await publish_answer_lost(
        server, mastodon_publisher(url, timeout=0.3), make_reply(), mention
    )
    assert not lost.permanent
    async with opened(
        mastodon_publisher(url)
    ) as restarted:  # a new process: no memory of the attempt
        found = await restarted.reconcile(make_reply(), mention)
        assert found is not None and found.posted_id == server.posts[0]["id"]
        # Even a resend without reconciling is absorbed by the Idempotency-Key.
        again = await restarted.publish(make_reply(), mention)
    assert again.posted_id == found.posted_id
    assert len(server.posts) == 1


async def test_reconcile_finds_nothing_when_no_reply_was_made(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    server.add_status("someone else answered", reply_to=status["id"])
    async with opened(mastodon_publisher(url)) as pub:
        assert await pub.reconcile(make_reply(), as_mention(status)) is None


@pytest.mark.parametrize(
    ("fault", "permanent", "match"),
    [
        (404, True, "deleted"),
        (403, True, "403"),
        (422, True, "rejected"),
        (429, False, "rate limited"),
        (502, False, "server error"),
    ],
)
async def test_publish_errors(
    fake: tuple[FakeMastodon, str], fault: int, permanent: bool, match: str
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    server.fail_next("/api/v1/statuses", fault, {"Retry-After": "42"})
    async with opened(mastodon_publisher(url)) as pub:
        with pytest.raises(PublishError, match=match) as info:
            await pub.publish(make_reply(), as_mention(status))
    assert info.value.permanent is permanent
    if fault == 429:
        assert info.value.retry_after == 42
    assert server.posts == []


async def test_too_long_reply_is_refused_before_sending(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    async with opened(mastodon_publisher(url, max_characters=30)) as pub:
        with pytest.raises(PublishError, match="characters") as info:
            await pub.publish(make_reply("x" * 30), as_mention(status))
    assert info.value.permanent and server.posts == []
    assert not any(r.startswith("POST") for r in server.requests)


def test_reply_text_and_length_follow_mastodon_rules() -> None:
    assert reply_text("hi", "bob@x.social") == "@bob@x.social hi"
    assert reply_text("@Bob@x.social hi", "bob@x.social") == "@Bob@x.social hi"
    assert reply_text("hi @bob@x.socialite", "bob@x.social") == "@bob@x.social hi @bob@x.socialite"
    assert status_length("@bob@x.social see https://example.com/" + "a" * 100) == 4 + 5 + 23


def test_rate_budget_refills_even_when_the_platform_does_not_say_when() -> None:
    budget = RateBudget()
    assert not budget.below(5)  # nothing known yet
    budget.record(3, None)
    assert budget.below(5) and budget.seconds_to_reset() is None
    budget.record(3, 0.0)  # the window has just refilled
    assert not budget.below(5)
    budget.record(50, 120.0)
    assert not budget.below(5) and 119.0 < (budget.seconds_to_reset() or 0) <= 120.0
