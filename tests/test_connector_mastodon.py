"""Mastodon connector against a loopback fake speaking Mastodon's REST wire format.

The fake is built from the documented Status payload (tests/fixtures/mastodon_status.json): it
keeps statuses and mention notifications, pages with since_id/min_id/max_id, sends
X-RateLimit-* headers, honours Idempotency-Key on POST /api/v1/statuses and can inject faults.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.connectors.mastodon import (
    MastodonClient,
    MastodonPublisher,
    MastodonSource,
    MastodonSourceConfig,
    reply_text,
    status_length,
)
from bot.domain.models import Author, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.errors import PublishError, SourceError, SourceRateLimited

TOKEN = "secret-token-123"
OWN_ID = "999"
TEMPLATE = json.loads(
    (Path(__file__).parent / "fixtures" / "mastodon_status.json").read_text(encoding="utf-8")
)


class FakeMastodon:
    """An in-memory Mastodon instance: statuses, mention notifications, replies."""

    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.idempotency: dict[str, str] = {}
        self.faults: list[tuple[str, int, dict[str, str]]] = []
        self.requests: list[str] = []
        self.post_delay = 0.0
        self.remaining = 300
        self._next = 110_000_000_000_000_000
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/api/v1/notifications", self.get_notifications)
        self.app.router.add_get("/api/v1/timelines/tag/{tag}", self.get_tag)
        self.app.router.add_get("/api/v2/search", self.get_search)
        self.app.router.add_get("/api/v1/accounts/verify_credentials", self.verify)
        self.app.router.add_get("/api/v1/statuses/{id}/context", self.get_context)
        self.app.router.add_get("/api/v1/statuses/{id}", self.get_status)
        self.app.router.add_post("/api/v1/statuses", self.post_status)

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_status(
        self,
        text: str,
        *,
        acct: str = "alice@social.example",
        account_id: str = "7",
        tags: tuple[str, ...] = (),
        reply_to: str | None = None,
        visibility: str = "public",
        mention: bool = False,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        status = copy.deepcopy(TEMPLATE)
        sid = self.new_id()
        when = (created_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        status.update(
            id=sid,
            created_at=when,
            content=f"<p>{text}</p>",
            in_reply_to_id=reply_to,
            visibility=visibility,
            url=f"https://fake.example/@{acct.split('@')[0]}/{sid}",
            uri=f"https://fake.example/users/{acct.split('@')[0]}/statuses/{sid}",
            tags=[{"name": t, "url": f"https://fake.example/tags/{t}"} for t in tags],
        )
        status["account"].update(id=account_id, acct=acct, username=acct.split("@")[0])
        self.statuses[sid] = status
        if mention:
            self.notifications.append(
                {"id": self.new_id(), "type": "mention", "created_at": when, "status": status}
            )
        return status

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.faults.append((path, status, headers or {}))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        reset = (datetime.now(UTC) + timedelta(seconds=120)).isoformat()
        limits = {"X-RateLimit-Limit": "300", "X-RateLimit-Reset": reset}
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "The access token is invalid"}, status=401)
        for i, (path, status, headers) in enumerate(self.faults):
            if request.path.startswith(path):
                del self.faults[i]
                return web.json_response(
                    {"error": "fault"}, status=status, headers={**limits, **headers}
                )
        self.remaining = max(0, self.remaining - 1)
        response = await handler(request)
        response.headers.update({**limits, "X-RateLimit-Remaining": str(self.remaining)})
        return response

    @staticmethod
    def page(items: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
        """Mastodon paging: newest first; min_id gives the page just after it."""

        def key(item: dict[str, Any]) -> int:
            return int(item["id"])

        limit = int(query.get("limit", 20))
        for name, keep in (
            ("since_id", lambda i, v: key(i) > v),
            ("min_id", lambda i, v: key(i) > v),
            ("max_id", lambda i, v: key(i) < v),
        ):
            if name in query:
                items = [i for i in items if keep(i, int(query[name]))]
        ordered = sorted(items, key=key)
        chosen = ordered[:limit] if "min_id" in query else ordered[-limit:]
        return sorted(chosen, key=key, reverse=True)

    async def get_notifications(self, request: web.Request) -> web.Response:
        types = request.query.getall("types[]", [])
        items = [n for n in self.notifications if not types or n["type"] in types]
        return web.json_response(self.page(items, request.query))

    async def get_tag(self, request: web.Request) -> web.Response:
        tag = request.match_info["tag"].lower()
        items = [
            s for s in self.statuses.values() if any(t["name"] == tag for t in s.get("tags", []))
        ]
        return web.json_response(self.page(items, request.query))

    async def get_search(self, request: web.Request) -> web.Response:
        q = request.query["q"].lower()
        items = [s for s in self.statuses.values() if q in s["content"].lower()]
        return web.json_response(
            {"accounts": [], "hashtags": [], "statuses": self.page(items, request.query)}
        )

    async def verify(self, request: web.Request) -> web.Response:
        return web.json_response({"id": OWN_ID, "acct": "parley", "username": "parley"})

    async def get_status(self, request: web.Request) -> web.Response:
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            return web.json_response({"error": "Record not found"}, status=404)
        return web.json_response(status)

    async def get_context(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        if sid not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404)
        children = [s for s in self.statuses.values() if s["in_reply_to_id"] == sid]
        return web.json_response({"ancestors": [], "descendants": children})

    async def post_status(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotency:
            return web.json_response(self.statuses[self.idempotency[key]])
        if not body.get("status"):
            return web.json_response({"error": "Validation failed: Text can't be blank"}, 422)
        parent = body.get("in_reply_to_id")
        if parent is not None and parent not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404)
        status = self.add_status(
            body["status"],
            acct="parley",
            account_id=OWN_ID,
            reply_to=parent,
            visibility=body.get("visibility", "public"),
        )
        status["language"] = body.get("language")
        if key:
            self.idempotency[key] = status["id"]
        if self.post_delay:
            await asyncio.sleep(self.post_delay)  # the post is made; the answer comes late
        return web.json_response(status)

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [s for s in self.statuses.values() if s["account"]["id"] == OWN_ID]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeMastodon, str]]:
    server = FakeMastodon()
    test_server = TestServer(server.app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield server, str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def config(base_url: str, **overrides: Any) -> MastodonSourceConfig:
    values: dict[str, Any] = {"type": "mastodon", "name": "masto", "base_url": base_url}
    values.update(overrides)
    return MastodonSourceConfig.model_validate(values)


def source(base_url: str, **overrides: Any) -> MastodonSource:
    return MastodonSource.create(config(base_url, **overrides), TOKEN)


def publisher(base_url: str, *, timeout: float = 5.0, **overrides: Any) -> MastodonPublisher:
    cfg = config(base_url, timeout=timeout, **overrides)
    return MastodonPublisher(cfg, MastodonClient(cfg.base_url, TOKEN, timeout=timeout))


def as_mention(status: dict[str, Any], **overrides: Any) -> Mention:
    values: dict[str, Any] = {
        "id": 1,
        "source": "masto",
        "platform": "mastodon",
        "external_id": status["id"],
        "url": status["url"],
        "canonical_url": status["url"],
        "author": Author(handle=status["account"]["acct"]),
        "title": None,
        "text": "text",
        "language": "en",
        "created_at": datetime.now(UTC),
        "fetched_at": datetime.now(UTC),
        "brand": "acme",
        "rule": "r",
        "state": MentionState.APPROVED,
    }
    values.update(overrides)
    return Mention.model_validate(values)


def make_reply(text: str = "Thanks! Settings → Export does it.", key: str = "k-1") -> Reply:
    now = datetime.now(UTC)
    return Reply(
        id=1,
        mention_id=1,
        text=text,
        publisher="mastodon",
        idempotency_key=key,
        state=ReplyState.SENDING,
        approved_by="telegram:cm",
        created_at=now - timedelta(seconds=5),
        updated_at=now,
    )


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
    src = source(url, hashtags=["#Acme"], search_queries=["acme beats"])
    try:
        result = await src.fetch({})
    finally:
        await src.aclose()
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
    first = source(url, page_size=2)
    try:
        cursor = (await first.fetch({})).cursor
    finally:
        await first.aclose()
    for n in range(5):
        server.add_status(f"new {n}", mention=True)
    second = source(url, page_size=2)  # a fresh object: as after a restart
    try:
        result = await second.fetch(cursor)
        again = await second.fetch(result.cursor)
    finally:
        await second.aclose()
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
    src = source(url, mentions=False, hashtags=["acme"])
    with caplog.at_level(logging.WARNING):
        try:
            result = await src.fetch({})
        finally:
            await src.aclose()
    assert [m.text for m in result.items] == ["fine #acme"]
    assert "skipped malformed status" in caplog.text
    assert result.cursor["tag:acme"] == max(server.statuses, key=int)


async def test_429_with_reset_headers_raises_rate_limited(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    reset = (datetime.now(UTC) + timedelta(seconds=90)).isoformat()
    server.fail_next(
        "/api/v1/notifications", 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    )
    src = source(url)
    try:
        with pytest.raises(SourceRateLimited) as info:
            await src.fetch({})
    finally:
        await src.aclose()
    assert info.value.retry_after is not None and 80 < info.value.retry_after <= 90
    assert TOKEN not in str(info.value)


async def test_low_budget_stops_polling_before_the_wall(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    server.add_status("#acme", tags=("acme",))
    server.remaining = 13
    src = source(url, hashtags=["acme", "other"], rate_limit_reserve=10)
    try:
        result = await src.fetch({"mentions": "1"})
    finally:
        await src.aclose()
    # verify_credentials, mentions and #acme spend 3 calls down to the reserve: "other" waits.
    assert "tag:acme" in result.cursor and "tag:other" not in result.cursor
    assert not any("/tag/other" in r for r in server.requests)


async def test_5xx_then_recovery_keeps_the_cursor(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    server.add_status("before", mention=True)
    src = source(url)
    try:
        cursor = (await src.fetch({})).cursor
        server.add_status("during outage", mention=True)
        server.fail_next("/api/v1/notifications", 503)
        with pytest.raises(SourceError, match="HTTP 503"):
            await src.fetch(cursor)
        result = await src.fetch(cursor)
    finally:
        await src.aclose()
    assert [m.text for m in result.items] == ["during outage"]


async def test_revoked_token_says_so_without_leaking_it(fake: tuple[FakeMastodon, str]) -> None:
    _, url = fake
    src = MastodonSource.create(config(url), "wrong-token")
    try:
        with pytest.raises(SourceError, match="MASTODON_ACCESS_TOKEN was rejected") as info:
            await src.fetch({})
    finally:
        await src.aclose()
    assert "wrong-token" not in str(info.value)


def test_config_validates_tags_and_url() -> None:
    cfg = config("https://m.example/", hashtags=["#Acme_1"])
    assert cfg.base_url == "https://m.example" and cfg.hashtags == ["Acme_1"]
    with pytest.raises(ValueError, match="hashtags"):
        config("https://m.example", hashtags=["two words"])
    with pytest.raises(ValueError, match="base_url"):
        config("m.example")


# --- publisher ----------------------------------------------------------------------------


async def test_publish_replies_with_mention_key_and_narrowest_visibility(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True, visibility="unlisted")
    pub = publisher(url, visibility="public")
    try:
        result = await pub.publish(make_reply(), as_mention(status, language="de"))
    finally:
        await pub.client.aclose()
    [post] = server.posts
    assert post["in_reply_to_id"] == status["id"]
    assert post["visibility"] == "unlisted"
    assert post["language"] == "de"
    assert post["content"] == "<p>@alice@social.example Thanks! Settings → Export does it.</p>"
    assert result.posted_id == post["id"] and result.url == post["url"]
    assert server.idempotency == {"k-1": post["id"]}


async def test_crash_between_send_and_commit_posts_once(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    mention = as_mention(status)
    server.post_delay = 1.0
    pub = publisher(url, timeout=0.3)
    try:
        # The post lands but the answer never arrives: outcome unknown.
        with pytest.raises(PublishError) as info:
            await pub.publish(make_reply(), mention)
        assert not info.value.permanent
    finally:
        await pub.client.aclose()
    await asyncio.sleep(0.8)
    restarted = publisher(url)  # a new process: no memory of the attempt
    try:
        found = await restarted.reconcile(make_reply(), mention)
        assert found is not None and found.posted_id == server.posts[0]["id"]
        server.post_delay = 0.0
        # Even a resend without reconciling is absorbed by the Idempotency-Key.
        again = await restarted.publish(make_reply(), mention)
    finally:
        await restarted.client.aclose()
    assert again.posted_id == found.posted_id
    assert len(server.posts) == 1


async def test_reconcile_finds_nothing_when_no_reply_was_made(
    fake: tuple[FakeMastodon, str],
) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    server.add_status("someone else answered", reply_to=status["id"])
    pub = publisher(url)
    try:
        assert await pub.reconcile(make_reply(), as_mention(status)) is None
    finally:
        await pub.client.aclose()


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
    pub = publisher(url)
    try:
        with pytest.raises(PublishError, match=match) as info:
            await pub.publish(make_reply(), as_mention(status))
    finally:
        await pub.client.aclose()
    assert info.value.permanent is permanent
    if fault == 429:
        assert info.value.retry_after == 42
    assert server.posts == []


async def test_too_long_reply_is_refused_before_sending(fake: tuple[FakeMastodon, str]) -> None:
    server, url = fake
    status = server.add_status("@parley help", mention=True)
    pub = publisher(url, max_characters=30)
    try:
        with pytest.raises(PublishError, match="characters") as info:
            await pub.publish(make_reply("x" * 30), as_mention(status))
    finally:
        await pub.client.aclose()
    assert info.value.permanent and server.posts == []
    assert not any(r.startswith("POST") for r in server.requests)


def test_reply_text_and_length_follow_mastodon_rules() -> None:
    assert reply_text("hi", "bob@x.social") == "@bob@x.social hi"
    assert reply_text("@Bob@x.social hi", "bob@x.social") == "@Bob@x.social hi"
    assert reply_text("hi @bob@x.socialite", "bob@x.social") == "@bob@x.social hi @bob@x.socialite"
    assert status_length("@bob@x.social see https://example.com/" + "a" * 100) == 4 + 5 + 23
