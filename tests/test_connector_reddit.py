"""Reddit connector against a loopback fake speaking Reddit's OAuth and listing wire format
(fakes/reddit.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_core
from bot.config import ParleyConfig
from bot.connectors.reddit.connector import (
    RedditClient,
    RedditPublisher,
    RedditSource,
    RedditSourceConfig,
    raw_mention,
    wait_seconds,
)
from bot.domain.models import Mention, Reply
from bot.domain.states import ReplyState
from bot.errors import PublishError, SourceError, SourceRateLimited
from bot.settings import Settings
from fakes.loopback import serve_app
from fakes.reddit import (
    CLIENT_ID,
    CLIENT_SECRET,
    COMMENT_TEMPLATE,
    PASSWORD,
    POST_TEMPLATE,
    USERNAME,
    FakeReddit,
)
from tests.helpers import (
    approve_first_find,
    approved_mention,
    killed_once_stored,
    post_through,
    sending_reply,
)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeReddit, str]]:
    server = FakeReddit()
    async with serve_app(server.app) as url:
        yield server, url


def config(url: str, **overrides: Any) -> RedditSourceConfig:
    values: dict[str, Any] = {
        "type": "reddit",
        "name": "reddit",
        "username": USERNAME,
        "base_url": url,
        "auth_url": url,
        "allow_private": True,  # the fake server is on loopback
        "subreddits": ["acme", "r/AcmeHelp"],
        "search_queries": ["acme"],
        "timeout": 5.0,
    }
    values.update(overrides)
    return RedditSourceConfig.model_validate(values)


def client(url: str, **overrides: Any) -> RedditClient:
    return RedditClient(
        config(url, **overrides),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        password=PASSWORD,
    )


def source(url: str, *, password: str = PASSWORD, **overrides: Any) -> RedditSource:
    return RedditSource.create(
        config(url, **overrides),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        password=password,
    )


def as_mention(thing: dict[str, Any]) -> Mention:
    return approved_mention(
        platform="reddit", source="reddit", external_id=thing["data"]["name"], url=None,
        handle=thing["data"]["author"],
    )  # fmt: skip


def make_reply(text: str = "Thanks! **Settings → Export** does it.") -> Reply:
    return sending_reply(text, publisher="reddit")


# --- source -------------------------------------------------------------------------------


async def test_first_poll_normalises_posts_comments_and_mentions(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    server.add_post("Acme vs the rest", "Has anyone tried **Acme**? Q&A <3")
    server.add_post("Unrelated", sub="acme")
    server.add_post("acme elsewhere", sub="other")
    server.add_comment("I moved to Acme last year", sub="AcmeHelp")
    server.add_comment("hey u/parley_bot does acme export?", mention=True)
    async with aclosing(source(url)) as src:
        result = await src.fetch({})

    by_kind = {m.external_id[:2]: m for m in result.items}
    assert [m.text[:12] for m in result.items] == ["Acme vs the ", "I moved to A", "hey u/parley"]
    post = by_kind["t3"]
    assert post.platform == "reddit" and post.source == "reddit"
    assert post.title == "Acme vs the rest"
    assert post.text == "Acme vs the rest\n\nHas anyone tried **Acme**? Q&A <3"
    assert post.url == f"https://www.reddit.com/r/acme/comments/{post.external_id[3:]}/slug/"
    assert post.author.handle == "alice"
    assert post.author.profile_url == "https://www.reddit.com/user/alice"
    assert post.author.reach == 92729  # subreddit_subscribers
    assert post.created_at is not None and post.created_at.tzinfo is UTC
    comment = by_kind["t1"]
    assert comment.thread_context == "Which tool for community replies?"
    assert comment.parent_ref == "t3_fbenua"
    assert comment.author.reach == 15
    mention = result.items[-1]
    assert mention.url is not None and "?" not in mention.url and mention.url.endswith("/")
    assert set(result.cursor) == {"search:acme+acmehelp:acme", "comments:acme+acmehelp", "mentions"}
    assert server.user_agents == {f"parley/{_version()} by u/{USERNAME}"}
    assert server.tokens_issued == 1  # one token for the whole poll
    assert any("/r/acme+AcmeHelp/search?" in r for r in server.requests)


def _version() -> str:
    from bot import __version__

    return __version__


async def test_cursor_resumes_after_restart_and_pages_back_to_it(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    server.add_comment("old one")
    async with aclosing(source(url, search_queries=[], mentions=False)) as src:
        first = await src.fetch({})
    assert [m.text for m in first.items] == ["old one"]
    for i in range(150):  # more than one page of 100
        server.add_comment(f"new {i}")
    async with aclosing(source(url, search_queries=[], mentions=False)) as restarted:
        second = await restarted.fetch(first.cursor)
        third = await restarted.fetch(second.cursor)
    assert [m.text for m in second.items] == [f"new {i}" for i in range(150)]
    assert third.items == []
    assert sum("/comments?" in r for r in server.requests) == 1 + 2 + 1


async def test_items_sharing_the_watermark_second_are_not_lost_or_repeated(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    first = server.add_comment("first")
    async with aclosing(source(url, search_queries=[], mentions=False)) as src:
        one = await src.fetch({})
        twin = server.add_comment("same second")
        twin["data"]["created_utc"] = first["data"]["created_utc"]
        two = await src.fetch(one.cursor)
        three = await src.fetch(two.cursor)
    assert [m.text for m in one.items] == ["first"]
    assert [m.text for m in two.items] == ["same second"]
    assert three.items == []


async def test_own_and_removed_comments_are_not_mentions(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    server.add_comment("my own reply", author=USERNAME)
    server.add_comment("[removed]")
    server.add_comment("a real one")
    async with aclosing(source(url, search_queries=[], mentions=False)) as src:
        result = await src.fetch({})
    assert [m.text for m in result.items] == ["a real one"]


async def test_malformed_item_is_skipped_with_a_log_line(
    fake: tuple[FakeReddit, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = fake
    server.add_comment("fine before")
    broken = server.add_comment("broken")
    server.add_comment("fine after")
    del broken["data"]["name"]
    src = source(url, search_queries=[], mentions=False)
    with caplog.at_level(logging.WARNING, logger="bot.connectors.reddit.connector"):
        async with aclosing(src):
            result = await src.fetch({})
    assert [m.text for m in result.items] == ["fine before", "fine after"]
    assert "skipped a malformed item" in caplog.text


async def test_429_with_reset_headers_is_rate_limited(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    headers = {"X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "42"}
    server.faults.append(("/r/", 429, headers, None))
    async with aclosing(source(url)) as src:
        with pytest.raises(SourceRateLimited) as caught:
            await src.fetch({})
    assert caught.value.retry_after is not None and 40 <= caught.value.retry_after <= 42
    assert "429" in str(caught.value)


async def test_retry_after_header_wins_over_reset(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    server.faults.append(("/r/", 429, {"Retry-After": "7", "X-Ratelimit-Reset": "300"}, None))
    async with aclosing(source(url)) as src:
        with pytest.raises(SourceRateLimited) as caught:
            await src.fetch({})
    assert caught.value.retry_after == 7


async def test_poll_stops_before_the_rate_limit_wall(
    fake: tuple[FakeReddit, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = fake
    server.add_post("acme news")
    server.add_comment("acme chat")
    server.add_comment("u/parley_bot acme?", mention=True)
    server.remaining = 12.0
    src = source(url, rate_limit_reserve=10)
    with caplog.at_level(logging.WARNING, logger="bot.connectors.reddit.connector"):
        async with aclosing(src):
            result = await src.fetch({})
    # Search answers with 11 left, comments with 10: the mentions route waits for the next poll.
    assert set(result.cursor) == {"search:acme+acmehelp:acme", "comments:acme+acmehelp"}
    assert src.rate_limit_remaining == 10
    assert "calls left before the rate limit" in caplog.text


async def test_5xx_then_recovery_keeps_the_cursor(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    server.add_comment("hello acme")
    server.faults.append(("/r/acme+AcmeHelp/comments", 503, {}, None))
    async with aclosing(source(url, search_queries=[], mentions=False)) as src:
        with pytest.raises(SourceError, match="HTTP 503"):
            await src.fetch({})
        result = await src.fetch({})
    assert [m.text for m in result.items] == ["hello acme"]


async def test_expired_token_is_renewed_once(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    server.add_comment("hello")
    async with aclosing(source(url, search_queries=[], mentions=False)) as src:
        first = await src.fetch({})
        again = await src.fetch(first.cursor)
        assert server.tokens_issued == 1  # cached across polls
        server.valid_token = "revoked-by-reddit"
        # Two callers sharing the client hit the 401 together: one new token serves both.
        results = await asyncio.gather(src.fetch(first.cursor), src.fetch(first.cursor))
    assert server.tokens_issued == 2
    assert again.items == [] and [r.items for r in results] == [[], []]


async def test_bad_credentials_say_so_without_secrets(fake: tuple[FakeReddit, str]) -> None:
    _, url = fake
    async with aclosing(source(url, password="wrong-password")) as src:
        with pytest.raises(SourceError) as caught:
            await src.fetch({})
    message = str(caught.value)
    assert "REDDIT_PASSWORD" in message and "u/parley_bot" in message
    assert "wrong-password" not in message and CLIENT_SECRET not in message


def test_missing_secrets_are_named() -> None:
    with pytest.raises(ValueError, match="needs REDDIT_CLIENT_SECRET, REDDIT_PASSWORD set"):
        RedditClient(config("http://x"), client_id=CLIENT_ID, client_secret="", password="")


def test_config_rejects_bad_subreddits_and_normalises_prefixes() -> None:
    assert config("http://x", subreddits=["/r/rust", "python"]).subreddits == ["rust", "python"]
    with pytest.raises(ValueError, match="not subreddit names"):
        config("http://x", subreddits=["no spaces"])


def test_raw_mention_reads_the_real_payloads() -> None:
    post = raw_mention("s", POST_TEMPLATE)
    comment = raw_mention("s", COMMENT_TEMPLATE)
    assert post is not None and comment is not None
    assert post.external_id == "t3_fbenua" and post.text == "A half-hour to learn Rust"
    assert post.url == "https://www.reddit.com/r/rust/comments/fbenua/a_halfhour_to_learn_rust/"
    assert post.created_at == datetime.fromtimestamp(1582992651, UTC)
    assert comment.external_id == "t1_cpy6x8q" and comment.parent_ref == "t3_313qxe"
    assert comment.text.startswith("This one was actually hilarious")
    with pytest.raises(ValueError):
        raw_mention("s", {"kind": "t5", "data": {}})


# --- publisher ----------------------------------------------------------------------------


async def test_publish_comments_under_the_mention(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    parent = server.add_comment("does acme export?")
    async with aclosing(client(url)) as api:
        result = await RedditPublisher(api).publish(make_reply(), as_mention(parent))
    [posted] = server.own_comments()
    assert posted["data"]["parent_id"] == parent["data"]["name"]
    assert posted["data"]["body"] == "Thanks! **Settings → Export** does it."
    assert result.posted_id == posted["data"]["name"]
    assert result.url == "https://www.reddit.com" + posted["data"]["permalink"]


async def test_crash_between_send_and_commit_is_reconciled_without_a_second_post(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    server.add_comment("Thanks! **Settings → Export** does it.", parent="t3_other", author=USERNAME)
    server.post_delay = 30.0
    reply, mention = make_reply(), as_mention(parent)
    async with aclosing(client(url)) as api:
        # The worker dies after Reddit stored the comment but before the answer came back.
        await killed_once_stored(
            RedditPublisher(api).publish(reply, mention), server.comment_stored
        )
        found = await RedditPublisher(api).reconcile(reply, mention)
    mine = [c for c in server.own_comments() if c["data"]["parent_id"] == parent["data"]["name"]]
    assert len(mine) == 1
    assert found is not None and found.posted_id == mine[0]["data"]["name"]
    assert found.url == "https://www.reddit.com" + mine[0]["data"]["permalink"]


async def test_outbox_crash_mid_post_then_restart_posts_once(
    fake: tuple[FakeReddit, str], settings: Settings, config: ParleyConfig
) -> None:
    """Found by the source, approved, the worker killed mid-post, restarted: one comment, sent."""
    server, url = fake
    question = server.add_comment("Is Acme down? I want a refund")
    question["data"]["created_utc"] = float(int(time.time()))
    server.post_delay = 30.0
    async with build_core(settings, config) as core:
        src = source(url, search_queries=[], mentions=False)
        post_through(core, "reddit", RedditPublisher(src.client))
        reply = await approve_first_find(core, src, "Sorry! We are looking into it now.")
        # The worker dies after Reddit stored the comment, before "sent" is committed.
        await killed_once_stored(core.outbox.send_due(), server.comment_stored)
        await src.aclose()
    server.post_delay = 0.0
    async with build_core(settings, config) as core:
        api = client(url)
        post_through(core, "reddit", RedditPublisher(api))
        await core.outbox.recover()
        await core.outbox.send_due()
        final = await core.store.replies.get(reply.id)
        await api.aclose()
    [posted] = server.own_comments()
    assert posted["data"]["parent_id"] == question["data"]["name"]
    assert final.state is ReplyState.SENT
    assert final.posted_url == "https://www.reddit.com" + posted["data"]["permalink"]


async def test_reconcile_finds_nothing_when_the_post_never_landed(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    # Same text, but posted before this reply was approved: written by hand, not by the crash.
    old = server.add_comment(make_reply().text, parent=parent["data"]["name"], author=USERNAME)
    old["data"]["created_utc"] = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    async with aclosing(client(url)) as api:
        assert await RedditPublisher(api).reconcile(make_reply(), as_mention(parent)) is None


async def test_locked_thread_is_a_permanent_failure(fake: tuple[FakeReddit, str]) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    server.locked.add(parent["data"]["name"])
    async with aclosing(client(url)) as api:
        with pytest.raises(PublishError) as caught:
            await RedditPublisher(api).publish(make_reply(), as_mention(parent))
    assert caught.value.permanent and "THREAD_LOCKED" in str(caught.value)
    assert server.own_comments() == []


async def test_ratelimit_error_is_retryable_after_the_stated_wait(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    errors = [["RATELIMIT", "you are doing that too much. try again in 5 minutes.", "ratelimit"]]
    server.faults.append(("/api/comment", 200, {}, {"json": {"errors": errors}}))
    async with aclosing(client(url)) as api:
        with pytest.raises(PublishError) as caught:
            await RedditPublisher(api).publish(make_reply(), as_mention(parent))
    assert not caught.value.permanent and caught.value.retry_after == 300


@pytest.mark.parametrize(
    ("status", "permanent"), [(403, True), (404, True), (429, False), (502, False)]
)
async def test_http_errors_map_to_retry_or_dead(
    fake: tuple[FakeReddit, str], status: int, permanent: bool
) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    server.faults.append(("/api/comment", status, {"Retry-After": "9"}, None))
    async with aclosing(client(url)) as api:
        with pytest.raises(PublishError) as caught:
            await RedditPublisher(api).publish(make_reply(), as_mention(parent))
    assert caught.value.permanent is permanent
    if status == 429:
        assert caught.value.retry_after == 9


async def test_overlong_or_foreign_replies_are_refused_before_sending(
    fake: tuple[FakeReddit, str],
) -> None:
    server, url = fake
    parent = server.add_post("Acme question")
    foreign = as_mention(parent).model_copy(update={"external_id": "109999"})
    async with aclosing(client(url)) as api:
        publisher = RedditPublisher(api)
        with pytest.raises(PublishError, match="10000") as long_error:
            await publisher.publish(make_reply("x" * 10_001), as_mention(parent))
        with pytest.raises(PublishError, match="not a Reddit post") as foreign_error:
            await publisher.publish(make_reply(), foreign)
    assert long_error.value.permanent and foreign_error.value.permanent
    assert not any(r.startswith("POST /api/comment") for r in server.requests)


def test_wait_seconds_reads_reddit_ratelimit_messages() -> None:
    assert wait_seconds("try again in 9 minutes.") == 540
    assert wait_seconds("try again in 30 seconds.") == 30
    assert wait_seconds("slow down") is None
