"""X connector against the loopback fake in fakes/x.py (X's wire format, OAuth 1.0a
signatures checked, x-rate-limit-* headers), driven through the real source and publisher,
and once through the whole core."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from bot.app import build_core
from bot.config import parse_config
from bot.connectors.catalog import build_source
from bot.connectors.x.client import XClient, XCredentials, XSourceConfig
from bot.connectors.x.connector import XSource
from bot.connectors.x.publisher import XPublisher
from bot.domain.models import Mention, Reply
from bot.domain.states import ReplyState
from bot.errors import (
    ConfigError,
    CredentialsRejected,
    PublishError,
    SourceError,
    SourceRateLimited,
)
from bot.settings import Settings
from fakes.x import (
    ACCESS_SECRET,
    ACCESS_TOKEN,
    API_KEY,
    API_SECRET,
    BEARER,
    BRAND,
    BRAND_ID,
    PAGE,
    SECRETS,
    FakeX,
    serve_fake_x,
)
from tests.conftest import BASIC_CONFIG
from tests.helpers import (
    CM,
    approved_mention,
    killed_once_stored,
    opened,
    sending_reply,
    set_x_keys,
)

CREDENTIALS = XCredentials(API_KEY, API_SECRET, ACCESS_TOKEN, ACCESS_SECRET)


@pytest.fixture
async def fake() -> AsyncIterator[FakeX]:
    async with serve_fake_x() as server:
        yield server


def config(base_url: str, **overrides: Any) -> XSourceConfig:
    values: dict[str, Any] = {
        "type": "x",
        "name": "xsrc",
        "base_url": base_url,
        "allow_private": True,  # the fake server is on loopback
    }
    values.update(overrides)
    return XSourceConfig.model_validate(values)


def source(url: str, credentials: XCredentials = CREDENTIALS, **overrides: Any) -> XSource:
    return XSource.create(config(url, **overrides), credentials)


def publisher(url: str, *, timeout: float = 5.0, **overrides: Any) -> XPublisher:
    cfg = config(url, timeout=timeout, **overrides)
    return XPublisher(cfg, XClient(cfg, CREDENTIALS), name="x:xsrc")


def as_mention(post: dict[str, Any], *, answerable: bool = True) -> Mention:
    return approved_mention(
        platform="x", source="xsrc", external_id=post["id"],
        url=f"https://x.com/dana_w/status/{post['id']}", handle="dana_w", text=post["text"],
        answerable=answerable,
    )  # fmt: skip


def make_reply(text: str = "Sorry! Exports are back, try again now.", attempts: int = 1) -> Reply:
    return sending_reply(text, publisher="x:xsrc", attempts=attempts)


async def fetch_once(url: str, cursor: dict[str, str] | None = None, **overrides: Any) -> Any:
    async with aclosing(source(url, **overrides)) as src:
        return await src.fetch(cursor or {})


# --- source -------------------------------------------------------------------------------


async def test_first_poll_reads_only_the_newest_page_and_normalises(fake: FakeX) -> None:
    question = fake.add_post("Does acme export to CSV?", author="bob")
    template = PAGE["data"][0]
    complaint = fake.add_post(template["text"], reply_to=question["id"])
    for n in range(8):
        fake.add_post(f"@{BRAND} ping {n}", author="carol")
    async with aclosing(source(fake.url, page_size=5)) as src:
        result = await src.fetch({})
        remaining = src.rate_limit_remaining
    assert [m.text for m in result.items] == [f"@{BRAND} ping {n}" for n in range(3, 8)]
    assert result.cursor == {"mentions": max(fake.posts, key=int)}
    assert remaining == 179
    assert [r.split("?")[0] for r in fake.requests] == [
        "GET /2/users/me", f"GET /2/users/{BRAND_ID}/mentions",
    ]  # fmt: skip
    # The complaint came before the newest page; a catch-up poll would carry it as:
    older = await fetch_once(fake.url, {"mentions": question["id"]}, page_size=20)
    first = older.items[0]
    user = PAGE["includes"]["users"][0]
    assert first.external_id == complaint["id"] and first.platform == "x"
    assert first.url == f"https://x.com/dana_w/status/{complaint['id']}"
    assert first.text.startswith(f"@{BRAND} my export has been stuck for 2 hours & support")
    assert first.author.handle == "dana_w" and first.author.display_name == user["name"]
    assert first.author.reach == user["public_metrics"]["followers_count"]
    assert first.language == "en" and first.created_at is not None
    assert first.parent_ref == question["id"]
    assert first.thread_context == "Does acme export to CSV?"
    assert first.answerable is True
    assert set(fake.auth_kinds) == {"oauth1"}


async def test_cursor_resumes_after_restart_and_pages_forward(fake: FakeX) -> None:
    fake.add_post(f"@{BRAND} old one")
    cursor = (await fetch_once(fake.url)).cursor
    for n in range(12):
        fake.add_post(f"@{BRAND} new {n}")
    # A fresh source object with the stored cursor: as after a restart.
    async with aclosing(source(fake.url, page_size=5)) as src:
        result = await src.fetch(cursor)
        again = await src.fetch(result.cursor)
    assert [m.text for m in result.items] == [f"@{BRAND} new {n}" for n in range(12)]
    assert again.items == []
    assert result.cursor == {"mentions": max(fake.posts, key=int)}
    assert sum("pagination_token=" in r for r in fake.requests) == 2
    reads = [r for r in fake.requests if "/mentions" in r]
    assert "since_id=" not in reads[0] and all("since_id=" in r for r in reads[1:])


async def test_catch_up_cut_short_finishes_next_poll_without_gaps(fake: FakeX) -> None:
    fake.add_post(f"@{BRAND} seen")
    cursor = (await fetch_once(fake.url)).cursor
    for n in range(12):
        fake.add_post(f"@{BRAND} burst {n}")
    first = await fetch_once(fake.url, cursor, page_size=5, max_pages=2)
    assert [m.text for m in first.items] == [f"@{BRAND} burst {n}" for n in range(2, 12)]
    assert first.cursor["mentions"] == cursor["mentions"]  # not moved past the unread part
    fake.add_post(f"@{BRAND} later")
    second = await fetch_once(fake.url, first.cursor, page_size=5, max_pages=2)
    third = await fetch_once(fake.url, second.cursor, page_size=5, max_pages=2)
    texts = [m.text for r in (first, second, third) for m in r.items]
    assert sorted(texts) == sorted([f"@{BRAND} burst {n}" for n in range(12)] + [f"@{BRAND} later"])
    assert len(texts) == len(set(texts))
    assert third.cursor == {"mentions": max(fake.posts, key=int)}


async def test_rate_limit_headers_stop_the_poll_before_the_wall(fake: FakeX) -> None:
    fake.add_post(f"@{BRAND} seen")
    cursor = (await fetch_once(fake.url)).cursor
    for n in range(15):
        fake.add_post(f"@{BRAND} burst {n}")
    fake.remaining["mentions"] = 7
    async with aclosing(source(fake.url, page_size=5, rate_limit_reserve=5)) as src:
        result = await src.fetch(cursor)
        calls = len(fake.requests)
        skipped = await src.fetch(result.cursor)
        left = src.rate_limit_remaining
    # Two pages spend the budget down to the reserve: the third waits for the next window.
    assert len(result.items) == 10 and left == 5
    assert "mentions#until" in result.cursor and result.cursor["mentions"] == cursor["mentions"]
    assert skipped.items == [] and skipped.cursor == result.cursor
    assert len(fake.requests) == calls  # the second poll asked nothing


async def test_429_reads_the_reset_header(fake: FakeX) -> None:
    reset = str(int(time.time()) + 90)
    fake.fail_next(
        f"/2/users/{BRAND_ID}/mentions",
        429,
        "too_many_requests",
        {"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset},
    )
    with pytest.raises(SourceRateLimited) as caught:
        await fetch_once(fake.url)
    assert caught.value.retry_after is not None and 85 <= caught.value.retry_after <= 90
    assert not any(secret in str(caught.value) for secret in SECRETS)


async def test_5xx_then_recovery_keeps_the_cursor(fake: FakeX) -> None:
    fake.add_post(f"@{BRAND} before")
    async with aclosing(source(fake.url)) as src:
        cursor = (await src.fetch({})).cursor
        fake.add_post(f"@{BRAND} during the outage")
        fake.fail_next(f"/2/users/{BRAND_ID}/mentions", 503)
        with pytest.raises(SourceError, match="HTTP 503"):
            await src.fetch(cursor)
        result = await src.fetch(cursor)
    assert [m.text for m in result.items] == [f"@{BRAND} during the outage"]


async def test_malformed_post_is_skipped_with_a_log_line(
    fake: FakeX, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_post(f"@{BRAND} fine one")
    broken = fake.add_post(f"@{BRAND} broken")
    broken["created_at"] = "yesterday"
    headless = fake.add_post(f"@{BRAND} no author")
    del headless["author_id"]
    fake.add_post(f"@{BRAND} fine two")
    fake.add_post(f"@{BRAND} our own post", author=BRAND)
    with caplog.at_level(logging.WARNING):
        result = await fetch_once(fake.url)
    assert [m.text for m in result.items] == [f"@{BRAND} fine one", f"@{BRAND} fine two"]
    assert caplog.text.count("skipped malformed post") == 2
    assert broken["id"] in caplog.text
    assert result.cursor["mentions"] == max(fake.posts, key=int)


async def test_refused_keys_raise_credentials_rejected_naming_the_variables(fake: FakeX) -> None:
    wrong = XCredentials(API_KEY, "not-the-secret", ACCESS_TOKEN, ACCESS_SECRET)
    with pytest.raises(CredentialsRejected) as caught:
        await fetch_once(fake.url, credentials=wrong)
    message = str(caught.value)
    assert "X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET" in message
    assert not any(secret in message for secret in (*SECRETS, "not-the-secret"))


async def test_forbidden_app_is_told_what_to_fix(fake: FakeX) -> None:
    fake.fail_next(f"/2/users/{BRAND_ID}/mentions", 403, "client_forbidden")
    with pytest.raises(CredentialsRejected, match="Project") as caught:
        await fetch_once(fake.url)
    assert "attached to a Project" in str(caught.value)


async def test_answerable_follows_x_reply_rule(fake: FakeX) -> None:
    ours = fake.add_post("Acme 2.0 is out", author=BRAND)
    asked = fake.add_post(f"@{BRAND} acme export is broken")
    quoted = fake.add_post("acme 2.0 finally!", author="erin", quote=ours["id"])
    bystander = fake.add_post("acme export broken for me too", author="bob", reply_to=asked["id"])
    gone = fake.add_post("acme deleted post", author="frank")
    fake.deleted.add(gone["id"])
    credentials = XCredentials(API_KEY, API_SECRET, ACCESS_TOKEN, ACCESS_SECRET, BEARER)
    result = await fetch_once(
        fake.url, credentials=credentials, mentions=False, search_queries=["acme -is:retweet"]
    )
    by_id = {m.external_id: m for m in result.items}
    assert set(by_id) == {asked["id"], quoted["id"], bystander["id"]}  # not our own post
    assert by_id[asked["id"]].answerable is True  # @mentioned the brand
    assert by_id[quoted["id"]].answerable is True  # quoted one of the brand's posts
    assert by_id[quoted["id"]].thread_context == "Acme 2.0 is out"
    assert by_id[bystander["id"]].answerable is False  # a reply that never names the brand
    assert "bearer" in fake.auth_kinds  # recent search went out with the app-only token
    assert result.cursor == {"search:acme -is:retweet": bystander["id"]}


async def test_partial_errors_keep_the_post_and_a_stale_search_cursor_restarts(
    fake: FakeX,
) -> None:
    parent = fake.add_post(f"@{BRAND} first")
    child = fake.add_post(f"@{BRAND} acme still down?", reply_to=parent["id"])
    fake.deleted.add(parent["id"])  # X answers 200 with an `errors` entry for it
    fake.search_floor = int(parent["id"])
    result = await fetch_once(fake.url, {"search:acme": "1"}, search_queries=["acme"])
    [mention] = [m for m in result.items if m.external_id == child["id"]]
    assert mention.parent_ref == parent["id"] and mention.thread_context is None
    assert result.cursor["search:acme"] == child["id"]


def test_config_validates_and_defaults() -> None:
    cfg = config("https://api.example/", username="@AcmeCloud")
    assert cfg.base_url == "https://api.example" and cfg.username == "AcmeCloud"
    assert (cfg.interval, cfg.page_size, cfg.reply_cost_usd, cfg.link_reply_cost_usd) == (
        60.0, 20, 0.01, 0.20,
    )  # fmt: skip
    for bad in ({"page_size": 3}, {"base_url": "api.x.com"}, {"search_queries": ["a" * 513]}):
        with pytest.raises(ValueError):
            XSourceConfig.model_validate({"type": "x", "name": "x", **bad})


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    set_x_keys(monkeypatch)
    monkeypatch.delenv("X_ACCESS_TOKEN_SECRET")
    parsed = parse_config({**BASIC_CONFIG, "sources": [{"type": "x", "name": "xsrc"}]}, "test.toml")
    with pytest.raises(ConfigError) as caught:
        build_source(parsed.sources[0])
    assert caught.value.problems == [
        "source 'xsrc' (x): set X_ACCESS_TOKEN_SECRET (the access token secret) in .env"
    ]


# --- publisher ----------------------------------------------------------------------------


async def test_reply_to_a_non_answerable_post_is_refused_without_a_request(fake: FakeX) -> None:
    post = fake.add_post("acme is slow today", author="bob")
    async with opened(publisher(fake.url)) as pub:
        with pytest.raises(PublishError, match="copy the text and reply by hand") as caught:
            await pub.publish(make_reply(), as_mention(post, answerable=False))
    assert caught.value.permanent
    assert fake.requests == []


async def test_reply_over_280_weighted_is_refused_without_a_request(fake: FakeX) -> None:
    post = fake.add_post(f"@{BRAND} help")
    text = "申" * 141  # CJK weighs 2: 282
    async with opened(publisher(fake.url)) as pub:
        with pytest.raises(PublishError, match="282 characters") as caught:
            await pub.publish(make_reply(text), as_mention(post))
    assert caught.value.permanent and fake.requests == []


async def test_publish_replies_and_records_the_cost(fake: FakeX) -> None:
    first = fake.add_post(f"@{BRAND} export stuck")
    second = fake.add_post(f"@{BRAND} is there a status page?")
    async with opened(publisher(fake.url)) as pub:
        plain = await pub.publish(make_reply(), as_mention(first))
        linked = await pub.publish(
            make_reply("Yes: https://status.acme.example/"), as_mention(second)
        )
    assert fake.post_bodies[0] == {
        "text": "Sorry! Exports are back, try again now.",
        "reply": {"in_reply_to_tweet_id": first["id"]},
    }
    mine = fake.own_posts()
    assert [p["referenced_tweets"] for p in mine] == [
        [{"type": "replied_to", "id": first["id"]}],
        [{"type": "replied_to", "id": second["id"]}],
    ]
    assert plain.posted_id == mine[0]["id"]
    assert plain.url == f"https://x.com/{BRAND}/status/{mine[0]['id']}"
    assert (plain.cost_usd, linked.cost_usd) == (0.01, 0.20)


async def test_crash_after_the_post_landed_never_posts_twice(fake: FakeX) -> None:
    post = fake.add_post(f"@{BRAND} refund please")
    mention = as_mention(post)
    fake.post_delay = 30.0
    async with opened(publisher(fake.url)) as pub:
        # The worker dies after X stored the reply, before the answer came back.
        await killed_once_stored(pub.publish(make_reply(), mention), fake.post_stored)
    fake.post_delay = 0.0
    async with opened(publisher(fake.url)) as restarted:  # a new process: no memory of the attempt
        found = await restarted.reconcile(make_reply(), mention)
        # A retry (second attempt) looks first and does not post again either.
        again = await restarted.publish(make_reply(attempts=2), mention)
    [posted] = fake.own_posts()
    assert found is not None and found.posted_id == posted["id"] and found.cost_usd == 0.01
    assert again.posted_id == posted["id"]
    assert len(fake.post_bodies) == 1


async def test_duplicate_answer_is_reconciled_not_failed(fake: FakeX) -> None:
    post = fake.add_post(f"@{BRAND} help")
    other = fake.add_post(f"@{BRAND} me too")
    async with opened(publisher(fake.url)) as pub:
        first = await pub.publish(make_reply(), as_mention(post))
        # The same reply sent again as a first attempt (its state was lost): X says duplicate.
        again = await pub.publish(make_reply(), as_mention(post))
        with pytest.raises(PublishError, match="duplicate") as caught:
            await pub.publish(make_reply(), as_mention(other))  # same text, another post
    assert again.posted_id == first.posted_id
    assert caught.value.permanent
    assert len(fake.own_posts()) == 1


async def test_reconcile_ignores_older_replies_and_raises_when_x_cannot_be_asked(
    fake: FakeX,
) -> None:
    post = fake.add_post(f"@{BRAND} help")
    by_hand = fake.add_post("Answered by hand yesterday", author=BRAND, reply_to=post["id"])
    by_hand["created_at"] = "2020-01-01T00:00:00.000Z"
    async with opened(publisher(fake.url)) as pub:
        assert await pub.reconcile(make_reply(), as_mention(post)) is None
        fake.fail_next(f"/2/users/{BRAND_ID}/tweets", 503)
        with pytest.raises(PublishError, match="cannot check") as caught:
            await pub.reconcile(make_reply(), as_mention(post))
    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("fault", "problem", "permanent", "match"),
    [
        (None, "deleted", True, "deleted"),
        (403, "oauth1_permissions", True, "Read and write"),
        (403, "not_summoned", True, "reply by hand"),
        (401, "unauthorized", True, "X_ACCESS_TOKEN_SECRET"),
        (429, "too_many_requests", False, "rate limited"),
        (503, "service_unavailable", False, "server error"),
    ],
)
async def test_publish_errors(
    fake: FakeX, fault: int | None, problem: str, permanent: bool, match: str
) -> None:
    post = fake.add_post(f"@{BRAND} help")
    if fault is None:
        fake.deleted.add(post["id"])
    else:
        reset = str(int(time.time()) + 60)
        fake.fail_next("/2/tweets", fault, problem, {"x-rate-limit-reset": reset})
    async with opened(publisher(fake.url)) as pub:
        with pytest.raises(PublishError, match=match) as caught:
            await pub.publish(make_reply(), as_mention(post))
    assert caught.value.permanent is permanent
    if fault == 429:
        assert caught.value.retry_after is not None and 55 <= caught.value.retry_after <= 60
    assert fake.own_posts() == []
    assert not any(secret in str(caught.value) for secret in SECRETS)


# --- through the core ---------------------------------------------------------------------


def core_config(url: str) -> Any:
    section = {"type": "x", "name": "xsrc", "base_url": url, "search_queries": ["acme"],
               "allow_private": True}  # fmt: skip
    return parse_config({**BASIC_CONFIG, "sources": [section]}, "test.toml")


async def test_core_answers_on_x_only_where_allowed(
    fake: FakeX, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_x_keys(monkeypatch)
    asked = fake.add_post(f"@{BRAND} acme is down, I want a refund")
    aside = fake.add_post("acme is down again", author="bob", reply_to=asked["id"])
    async with build_core(settings, core_config(fake.url)) as core:
        assert type(core.runners[0].source).__name__ == "XSource"
        await core.poll_all_once()
        stored = [await core.store.mentions.get(i) for i in (1, 2)]
        assert [(m.external_id, m.answerable) for m in stored] == [
            (asked["id"], True), (aside["id"], False),
        ]  # fmt: skip
        replies = []
        for mention in stored:
            await core.review.edit(mention.id, "Sorry! We are on it.", CM)
            replies.append(await core.review.approve(mention.id, CM))
        assert [r.publisher for r in replies] == ["x:xsrc", "manual"]
        await core.outbox.send_due()
        sent = await core.store.replies.get(replies[0].id)
        manual = await core.store.replies.get(replies[1].id)
    [posted] = fake.own_posts()
    assert posted["referenced_tweets"] == [{"type": "replied_to", "id": asked["id"]}]
    assert sent.state is ReplyState.SENT and sent.cost_usd == 0.01
    assert sent.posted_url == f"https://x.com/{BRAND}/status/{posted['id']}"
    assert manual.state is ReplyState.AWAITING_MANUAL
    assert len(fake.post_bodies) == 1


async def test_core_crash_mid_post_then_restart_posts_once(
    fake: FakeX, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_x_keys(monkeypatch)
    asked = fake.add_post(f"@{BRAND} acme outage? refund?")
    fake.post_delay = 30.0
    async with build_core(settings, core_config(fake.url)) as core:
        await core.poll_all_once()
        await core.review.edit(1, "Sorry! Fixed now, refund on its way.", CM)
        reply = await core.review.approve(1, CM)
        # The worker dies after X stored the post, before "sent" is committed.
        await killed_once_stored(core.outbox.send_due(), fake.post_stored)
    fake.post_delay = 0.0
    async with build_core(settings, core_config(fake.url)) as core:
        await core.outbox.recover()
        await core.outbox.send_due()
        final = await core.store.replies.get(reply.id)
    [posted] = fake.own_posts()
    assert posted["referenced_tweets"] == [{"type": "replied_to", "id": asked["id"]}]
    assert final.state is ReplyState.SENT and final.posted_id == posted["id"]
    assert final.cost_usd == 0.01
    assert len(fake.post_bodies) == 1
