"""A fake Reddit on loopback speaking Reddit's OAuth and listing wire format.

Built from real t3/t1 payloads (fakes/payloads/reddit_*.json): it issues password-grant tokens,
serves newest-first listings paged with ``after``, sends X-Ratelimit-* headers, takes comments on
POST /api/comment (with Reddit's ``json.errors`` shape) and can inject faults.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import html
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

CLIENT_ID = "app-id-123"
CLIENT_SECRET = "app-secret-456"
PASSWORD = "hunter2-password"
USERNAME = "parley_bot"
PAYLOADS = Path(__file__).parent / "payloads"
POST_TEMPLATE = json.loads((PAYLOADS / "reddit_submission_listing_t3.json").read_text("utf-8"))[
    "data"
]["children"][0]
COMMENT_TEMPLATE = json.loads((PAYLOADS / "reddit_comment_t1.json").read_text("utf-8"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeReddit:
    """An in-memory Reddit: posts, comments, inbox mentions, tokens and a rate budget."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.mentions: list[dict[str, Any]] = []
        self.locked: set[str] = set()
        self.faults: list[tuple[str, int, dict[str, str], dict[str, Any] | None]] = []
        self.requests: list[str] = []
        self.user_agents: set[str] = set()
        self.tokens_issued = 0
        self.valid_token: str | None = None
        self.post_delay = 0.0
        self.comment_stored = asyncio.Event()
        self.remaining = 100.0
        self.clock = int(time.time()) - 86_400
        self._seq = 0
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_post("/api/v1/access_token", self.access_token)
        self.app.router.add_get("/r/{subs}/search", self.search)
        self.app.router.add_get("/r/{subs}/comments", self.subreddit_comments)
        self.app.router.add_get("/message/mentions", self.inbox_mentions)
        self.app.router.add_post("/api/comment", self.post_comment)
        self.app.router.add_get("/user/{name}/comments", self.user_comments)

    # --- data -------------------------------------------------------------------------------

    def _next(self) -> tuple[str, int]:
        self._seq += 1
        self.clock += 10
        return f"x{self._seq:05d}", self.clock

    def add_post(self, title: str, selftext: str = "", sub: str = "acme") -> dict[str, Any]:
        ident, created = self._next()
        thing: dict[str, Any] = copy.deepcopy(POST_TEMPLATE)
        thing["data"].update(
            id=ident,
            name=f"t3_{ident}",
            title=title,
            selftext=selftext,
            subreddit=sub,
            created_utc=float(created),
            author="alice",
            permalink=f"/r/{sub}/comments/{ident}/slug/",
        )
        self.posts.append(thing)
        return thing

    def add_comment(
        self,
        body: str,
        *,
        parent: str = "t3_fbenua",
        sub: str = "acme",
        author: str = "bob",
        mention: bool = False,
    ) -> dict[str, Any]:
        ident, created = self._next()
        thing: dict[str, Any] = copy.deepcopy(COMMENT_TEMPLATE)
        link = parent if parent.startswith("t3_") else "t3_fbenua"
        permalink = f"/r/{sub}/comments/{link[3:]}/slug/{ident}/"
        thing["data"].update(
            id=ident,
            name=f"t1_{ident}",
            body=body,
            author=author,
            subreddit=sub,
            parent_id=parent,
            link_id=link,
            link_title="Which tool for community replies?",
            created_utc=float(created),
            permalink=permalink,
        )
        if mention:
            # Inbox items carry ``context`` instead of ``permalink``.
            inbox = copy.deepcopy(thing)
            del inbox["data"]["permalink"]
            inbox["data"]["context"] = permalink + "?context=3"
            self.mentions.append(inbox)
        else:
            self.comments.append(thing)
        return thing

    def own_comments(self) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["data"]["author"] == USERNAME]

    # --- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        self.user_agents.add(request.headers.get("User-Agent", ""))
        for i, (prefix, status, headers, body) in enumerate(self.faults):
            if request.path.startswith(prefix):
                del self.faults[i]
                return web.json_response(body or {"error": status}, status=status, headers=headers)
        if request.path != "/api/v1/access_token":
            auth = request.headers.get("Authorization", "")
            if self.valid_token is None or auth != f"bearer {self.valid_token}":
                return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
            self.remaining -= 1
        response = await handler(request)
        response.headers["X-Ratelimit-Remaining"] = f"{self.remaining:.1f}"
        response.headers["X-Ratelimit-Used"] = f"{100 - self.remaining:.0f}"
        response.headers["X-Ratelimit-Reset"] = "300"
        return response

    def _listing(self, request: web.Request, things: list[dict[str, Any]]) -> web.Response:
        ordered = sorted(things, key=lambda t: t["data"]["created_utc"], reverse=True)
        limit = min(int(request.query.get("limit", "25")), 100)
        after = request.query.get("after")
        if after:
            names = [t["data"]["name"] for t in ordered]
            ordered = ordered[names.index(after) + 1 :] if after in names else []
        page = ordered[:limit]
        more = len(ordered) > limit
        if request.query.get("raw_json") != "1":
            # Reddit's legacy default: &, < and > in text fields arrive HTML-escaped.
            page = copy.deepcopy(page)
            for thing in page:
                for key in ("title", "selftext", "body"):
                    if key in thing["data"]:
                        thing["data"][key] = html.escape(thing["data"][key], quote=False)
        data = {"after": page[-1]["data"]["name"] if more else None, "before": None}
        return web.json_response({"kind": "Listing", "data": {**data, "children": page}})

    @staticmethod
    def _subs(request: web.Request) -> set[str]:
        return {s.lower() for s in request.match_info["subs"].split("+")}

    # --- routes ------------------------------------------------------------------------------

    async def access_token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        form = await request.post()
        if form.get("grant_type") != "password" or form.get("username") != USERNAME:
            return web.json_response({"error": "unsupported_grant_type"})
        if form.get("password") != PASSWORD:
            return web.json_response({"error": "invalid_grant"})
        self.tokens_issued += 1
        self.valid_token = f"token-{self.tokens_issued}"
        return web.json_response(
            {"access_token": self.valid_token, "token_type": "bearer", "expires_in": 86400}
        )

    async def search(self, request: web.Request) -> web.Response:
        assert request.query["restrict_sr"] == "1" and request.query["sort"] == "new"
        query = request.query["q"].lower()
        subs = self._subs(request)
        found = [
            p
            for p in self.posts
            if p["data"]["subreddit"].lower() in subs
            and query in (p["data"]["title"] + " " + p["data"]["selftext"]).lower()
        ]
        return self._listing(request, found)

    async def subreddit_comments(self, request: web.Request) -> web.Response:
        subs = self._subs(request)
        return self._listing(
            request, [c for c in self.comments if c["data"]["subreddit"].lower() in subs]
        )

    async def inbox_mentions(self, request: web.Request) -> web.Response:
        return self._listing(request, self.mentions)

    async def user_comments(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return self._listing(request, [c for c in self.comments if c["data"]["author"] == name])

    async def post_comment(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["api_type"] == "json"
        thing_id, text = str(form["thing_id"]), str(form["text"])
        if thing_id in self.locked:
            errors = [["THREAD_LOCKED", "that thread is locked", "parent"]]
            return web.json_response({"json": {"errors": errors}})
        comment = self.add_comment(text, parent=thing_id, author=USERNAME)
        comment["data"]["created_utc"] = float(int(time.time()))
        self.comment_stored.set()
        await asyncio.sleep(self.post_delay)
        return web.json_response(
            {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": comment["data"]}]}}}
        )
