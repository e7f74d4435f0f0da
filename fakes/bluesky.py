"""A fake Bluesky PDS on loopback speaking XRPC: sessions, search, notifications, posting.

Built from fakes/payloads/bluesky_searchposts_postview.json. Tests add posts and notifications,
queue scripted failures per method, expire the access token, and inspect what was posted.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

PAYLOAD = Path(__file__).parent / "payloads" / "bluesky_searchposts_postview.json"
BOT_DID = "did:plc:parleybot000000000000000"
BOT_HANDLE = "parley.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"


def sample_post() -> dict[str, Any]:
    """The postView from the real payload (a copy)."""
    post: dict[str, Any] = json.loads(PAYLOAD.read_text())["posts"][0]
    return copy.deepcopy(post)


def make_post(
    rkey: str,
    text: str,
    when: str,
    *,
    did: str = "did:plc:alice",
    handle: str = "alice.bsky.social",
    reply_to: dict[str, Any] | None = None,
    langs: list[str] | None = None,
) -> dict[str, Any]:
    """A postView shaped like the payload's, with its own URI, author, text and time."""
    post = sample_post()
    post["uri"] = f"at://{did}/app.bsky.feed.post/{rkey}"
    post["cid"] = f"bafycid{rkey}"
    post["author"].update(did=did, handle=handle, displayName=handle.split(".")[0].title())
    post["record"].update(text=text, createdAt=when, langs=langs or ["en"])
    if reply_to is None:
        post["record"].pop("reply", None)
    else:
        root = (reply_to["record"].get("reply") or {}).get("root") or {
            "uri": reply_to["uri"],
            "cid": reply_to["cid"],
        }
        parent = {"uri": reply_to["uri"], "cid": reply_to["cid"]}
        post["record"]["reply"] = {"root": root, "parent": parent}
    post["indexedAt"] = when
    return post


@dataclass
class FakeBluesky:
    """State of the fake PDS; ``url`` is set once it serves."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    followers: dict[str, int] = field(default_factory=dict)
    failures: dict[str, deque[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )
    calls: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 0
    refreshes: int = 0
    access: str = ""
    refresh: str = ""
    expired: bool = False
    ratelimit_remaining: int = 2999
    created_event: asyncio.Event = field(default_factory=asyncio.Event)
    hold_after_create: asyncio.Event | None = None
    """When set, createRecord stores the post, then answers only once this event is set."""

    def fail(
        self,
        nsid: str,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next call to ``nsid`` with this status (queued, one use each)."""
        self.failures.setdefault(nsid, deque()).append((status, body or {}, headers or {}))

    def expire_token(self) -> None:
        """The current access token is expired from now on."""
        self.expired = True

    def notify(self, post: dict[str, Any], reason: str) -> None:
        """A notification (newest first, as the PDS lists them)."""
        entry = {k: post[k] for k in ("uri", "cid", "author", "record", "indexedAt")}
        entry.update(reason=reason, isRead=False, labels=[])
        self.notifications.insert(0, entry)

    def calls_to(self, nsid: str) -> list[list[tuple[str, str]]]:
        """Parameters of every call to ``nsid``."""
        return [params for name, params in self.calls if name == nsid]

    async def handle(self, request: web.Request) -> web.Response:
        nsid = request.match_info["nsid"]
        params = list(request.query.items())
        self.calls.append((nsid, params))
        headers = {
            "ratelimit-limit": "3000",
            "ratelimit-remaining": str(self.ratelimit_remaining),
            "ratelimit-reset": "4102444800",
            "ratelimit-policy": "3000;w=300",
        }
        queue = self.failures.get(nsid)
        if queue:
            status, body, extra = queue.popleft()
            return web.json_response(body, status=status, headers={**headers, **extra})
        body = await request.json() if request.method == "POST" and request.can_read_body else {}
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if nsid == "com.atproto.server.createSession":
            if body.get("identifier") != BOT_HANDLE or body.get("password") != PASSWORD:
                err = {
                    "error": "AuthenticationRequired",
                    "message": "Invalid identifier or password",
                }
                return web.json_response(err, status=401, headers=headers)
            return web.json_response(self._new_session("session"), headers=headers)
        if nsid == "com.atproto.server.refreshSession":
            if auth != self.refresh:
                err = {"error": "ExpiredToken", "message": "Token has expired"}
                return web.json_response(err, status=400, headers=headers)
            self.refreshes += 1
            return web.json_response(self._new_session("refresh"), headers=headers)
        if not auth or auth != self.access:
            err = {"error": "AuthenticationRequired", "message": "Invalid token"}
            return web.json_response(err, status=401, headers=headers)
        if self.expired:
            err = {"error": "ExpiredToken", "message": "Token has expired"}
            return web.json_response(err, status=400, headers=headers)
        answer = getattr(self, "_" + nsid.replace(".", "_"), None)
        if answer is None:
            err = {"error": "MethodNotImplemented", "message": nsid}
            return web.json_response(err, status=501, headers=headers)
        status, data = answer(request, body)
        if nsid == "com.atproto.repo.createRecord" and status == 200:
            self.created_event.set()
        if nsid == "com.atproto.repo.createRecord" and self.hold_after_create is not None:
            await self.hold_after_create.wait()
        return web.json_response(data, status=status, headers=headers)

    def _new_session(self, kind: str) -> dict[str, Any]:
        if kind == "session":
            self.sessions += 1
        n = self.sessions * 100 + self.refreshes
        self.access, self.refresh, self.expired = f"access-{n}", f"refresh-{n}", False
        return {
            "did": BOT_DID,
            "handle": BOT_HANDLE,
            "accessJwt": self.access,
            "refreshJwt": self.refresh,
            "active": True,
        }

    def _app_bsky_feed_searchPosts(
        self, request: web.Request, _: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        q = request.query["q"].lower()
        since = request.query.get("since")
        found = [
            p
            for p in self.posts
            if q in p["record"]["text"].lower() and (since is None or p["indexedAt"] >= since)
        ]
        found.sort(key=lambda p: p["indexedAt"], reverse=True)
        return 200, self._page(request, found, "posts")

    def _app_bsky_notification_listNotifications(
        self, request: web.Request, _: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        reasons = request.query.getall("reasons", [])
        found = [n for n in self.notifications if not reasons or n["reason"] in reasons]
        return 200, self._page(request, found, "notifications")

    def _app_bsky_actor_getProfiles(
        self, request: web.Request, _: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        actors = request.query.getall("actors")
        if len(actors) > 25:
            return 400, {"error": "InvalidRequest", "message": "too many actors"}
        profiles = [
            {"did": a, "handle": a, "followersCount": self.followers[a]}
            for a in actors
            if a in self.followers
        ]
        return 200, {"profiles": profiles}

    def _app_bsky_feed_getPosts(
        self, request: web.Request, _: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        uris = request.query.getall("uris")
        if len(uris) > 25:
            return 400, {"error": "InvalidRequest", "message": "too many uris"}
        return 200, {"posts": [p for p in self.posts if p["uri"] in uris]}

    def _app_bsky_feed_getPostThread(
        self, request: web.Request, _: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        uri = request.query["uri"]
        post = next((p for p in self.posts if p["uri"] == uri), None)
        if post is None:
            return 400, {"error": "NotFound", "message": f"Post not found: {uri}"}
        replies = [
            {"$type": "app.bsky.feed.defs#threadViewPost", "post": p, "replies": []}
            for p in self.posts
            if (p["record"].get("reply") or {}).get("parent", {}).get("uri") == uri
        ]
        thread = {"$type": "app.bsky.feed.defs#threadViewPost", "post": post, "replies": replies}
        return 200, {"thread": thread}

    def _com_atproto_repo_createRecord(
        self, _: web.Request, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        record = body.get("record") or {}
        if body.get("repo") != BOT_DID or body.get("collection") != "app.bsky.feed.post":
            return 400, {"error": "InvalidRequest", "message": "bad repo or collection"}
        parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
        if parent is not None and not any(p["uri"] == parent for p in self.posts):
            return 400, {"error": "InvalidRequest", "message": "parent not found"}
        self.created.append(body)
        rkey = f"3parley{len(self.created):05d}"
        uri = f"at://{BOT_DID}/app.bsky.feed.post/{rkey}"
        post = {
            "uri": uri,
            "cid": f"bafycid{rkey}",
            "author": {"did": BOT_DID, "handle": BOT_HANDLE},
            "record": record,
            "indexedAt": record.get("createdAt"),
        }
        self.posts.append(post)
        return 200, {"uri": uri, "cid": post["cid"]}

    @staticmethod
    def _page(request: web.Request, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        start = int(request.query.get("cursor", "0"))
        limit = int(request.query.get("limit", "25"))
        page: dict[str, Any] = {key: items[start : start + limit]}
        if start + limit < len(items):
            page["cursor"] = str(start + limit)
        return page


@asynccontextmanager
async def serve_fake_bluesky(fake: FakeBluesky | None = None) -> AsyncIterator[FakeBluesky]:
    """Run the fake PDS on 127.0.0.1 (a free port) for the duration of the block."""
    fake = fake or FakeBluesky()
    app = web.Application()
    app.router.add_route("*", "/xrpc/{nsid}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
