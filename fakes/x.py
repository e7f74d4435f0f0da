"""A fake X API v2 on loopback speaking X's wire format.

Posts and users are built from fakes/payloads/x_mentions_page.json, error bodies come from
fakes/payloads/x_problems.json (problem+json). It serves the mentions timeline, recent search,
a user's own posts, ``GET /2/users/me`` and ``POST /2/tweets``; answers with
``data``/``includes``/``meta`` (only the fields asked for), partial ``errors`` for referenced
posts that are gone, and ``x-rate-limit-*`` headers per endpoint (a spent budget answers 429).

Every request must be signed with OAuth 1.0a HMAC-SHA1 for the test keys; the signature is
checked here independently of the client's library (RFC 5849 §3.4). Recent search also accepts
the app-only bearer token. Replies follow X's self-serve rule: only to posts that @mention or
quote the replying account.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from aiohttp.typedefs import Handler

from fakes.loopback import serve_app

FIXTURES = Path(__file__).parent / "payloads"
PAGE: dict[str, Any] = json.loads((FIXTURES / "x_mentions_page.json").read_text("utf-8"))
PROBLEMS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "x_problems.json").read_text("utf-8"))

BRAND_ID = "1000000001"
BRAND = "acmecloud"
API_KEY = "ck-test-key-123"
API_SECRET = "cs-test-secret-456"
ACCESS_TOKEN = "1000000001-at-test-789"
ACCESS_SECRET = "ats-test-secret-abc"
BEARER = "AAAA-test-bearer-def"
SECRETS = (API_SECRET, ACCESS_TOKEN, ACCESS_SECRET, BEARER)
KEYS_ENV = {
    "X_API_KEY": API_KEY,
    "X_API_SECRET": API_SECRET,
    "X_ACCESS_TOKEN": ACCESS_TOKEN,
    "X_ACCESS_TOKEN_SECRET": ACCESS_SECRET,
}
"""The four OAuth 1.0a keys the fake accepts, named as Parley reads them from the environment."""

LIMITS = {"me": 75, "mentions": 180, "search": 300, "own_posts": 900, "post": 100}
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")
_MENTION = re.compile(r"(?<!\w)@(\w{1,15})")


def _enc(value: str) -> str:
    return quote(value, safe="")


def oauth1_valid(request: web.Request) -> bool:
    """Whether the Authorization header is a valid HMAC-SHA1 signature for the test keys."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("OAuth "):
        return False
    params = {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header[6:])}
    if (
        params.get("oauth_consumer_key") != API_KEY
        or params.get("oauth_token") != ACCESS_TOKEN
        or params.get("oauth_signature_method") != "HMAC-SHA1"
        or not params.get("oauth_nonce")
        or not params.get("oauth_timestamp", "").isdigit()
    ):
        return False
    signature = params.pop("oauth_signature", "")
    params.pop("realm", None)
    pairs = [*request.query.items(), *params.items()]
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in pairs))
    base_uri = f"{request.scheme}://{request.host}{request.rel_url.raw_path}"
    base = "&".join((request.method.upper(), _enc(base_uri), _enc(normalized)))
    key = f"{_enc(API_SECRET)}&{_enc(ACCESS_SECRET)}"
    expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest())
    return hmac.compare_digest(expected.decode(), signature)


def _when(value: datetime | None = None) -> str:
    return (value or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _token(post_id: str) -> str:
    return "pt" + base64.b32encode(post_id.encode()).decode().rstrip("=").lower()


def _untoken(token: str) -> int:
    raw = token.removeprefix("pt").upper()
    return int(base64.b32decode(raw + "=" * (-len(raw) % 8)).decode())


class FakeX:
    """An in-memory X: users, posts, the brand's replies, rate budgets and scripted faults."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.requests: list[str] = []
        self.auth_kinds: list[str] = []
        self.post_bodies: list[dict[str, Any]] = []
        self.faults: list[tuple[str, int, dict[str, Any], dict[str, str]]] = []
        self.remaining = dict(LIMITS)
        self.search_floor = 0  # since_id below this: "must be a tweet id created after …"
        self.post_delay = 0.0
        self.post_stored = asyncio.Event()
        self.url = ""
        self._next = int(PAGE["data"][0]["id"])
        template_user = PAGE["includes"]["users"][0]
        self.users[template_user["id"]] = copy.deepcopy(template_user)
        self.add_user(BRAND, name="Acme Cloud", user_id=BRAND_ID, followers=52_000)
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/2/users/me", self.get_me)
        self.app.router.add_get("/2/users/{id}/mentions", self.get_mentions)
        self.app.router.add_get("/2/users/{id}/tweets", self.get_user_posts)
        self.app.router.add_get("/2/tweets/search/recent", self.get_search)
        self.app.router.add_post("/2/tweets", self.post_tweet)

    # --- data -------------------------------------------------------------------------------

    def add_user(
        self, username: str, *, name: str | None = None, user_id: str | None = None,
        followers: int = 120,
    ) -> dict[str, Any]:  # fmt: skip
        """A user (an existing username is returned as is)."""
        for user in self.users.values():
            if user["username"].lower() == username.lower():
                return user
        user = copy.deepcopy(PAGE["includes"]["users"][0])
        user_id = user_id or str(2_000_000_000 + len(self.users))
        user.update(id=user_id, username=username, name=name or username.title())
        user["public_metrics"]["followers_count"] = followers
        self.users[user_id] = user
        return user

    def new_id(self) -> str:
        self._next += 1_000_000
        return str(self._next)

    def add_post(
        self,
        text: str,
        *,
        author: str = "dana_w",
        reply_to: str | None = None,
        quote: str | None = None,
        created_at: datetime | None = None,
        lang: str = "en",
    ) -> dict[str, Any]:
        """A post as X stores it; ``entities.mentions`` name every known @user in the text."""
        user = self.add_user(author)
        post: dict[str, Any] = copy.deepcopy(PAGE["data"][0])
        post_id = self.new_id()
        mentions = []
        for match in _MENTION.finditer(text):
            known = next(
                (u for u in self.users.values() if u["username"].lower() == match[1].lower()),
                None,
            )
            if known is not None:
                mentions.append(
                    {"start": match.start(), "end": match.end(), "username": known["username"],
                     "id": known["id"]}
                )  # fmt: skip
        post.update(
            id=post_id,
            edit_history_tweet_ids=[post_id],
            text=text,
            created_at=_when(created_at),
            author_id=user["id"],
            conversation_id=post_id,
            lang=lang,
            entities={"mentions": mentions} if mentions else {},
        )
        refs = []
        if reply_to is not None:
            parent = self.posts[reply_to]
            refs.append({"type": "replied_to", "id": reply_to})
            post["in_reply_to_user_id"] = parent["author_id"]
            post["conversation_id"] = parent["conversation_id"]
        if quote is not None:
            refs.append({"type": "quoted", "id": quote})
        if refs:
            post["referenced_tweets"] = refs
        self.posts[post_id] = post
        return post

    def fail_next(
        self,
        path: str,
        status: int,
        problem: str | dict[str, Any] = "service_unavailable",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next request whose path starts with ``path`` answers ``status`` and a problem."""
        body = PROBLEMS[problem] if isinstance(problem, str) else problem
        self.faults.append((path, status, body, headers or {}))

    def own_posts(self) -> list[dict[str, Any]]:
        """The brand's posts, oldest first."""
        mine = [p for p in self.posts.values() if p["author_id"] == BRAND_ID]
        return sorted(mine, key=lambda p: int(p["id"]))

    # --- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _family(request: web.Request) -> str:
        path = request.path
        if path == "/2/users/me":
            return "me"
        if path.endswith("/mentions"):
            return "mentions"
        if path.startswith("/2/tweets/search"):
            return "search"
        return "post" if request.method == "POST" else "own_posts"

    def _limit_headers(self, family: str) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(LIMITS[family]),
            "x-rate-limit-remaining": str(self.remaining[family]),
            "x-rate-limit-reset": str(int(time.time()) + 900),
        }

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        family = self._family(request)
        authorization = request.headers.get("Authorization", "")
        if authorization == f"Bearer {BEARER}":
            if family != "search":
                return web.json_response(
                    {"title": "Unsupported Authentication", "status": 403,
                     "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for "
                     "this endpoint.", "type": "https://api.twitter.com/2/problems/"
                     "unsupported-authentication"}, status=403,
                )  # fmt: skip
            self.auth_kinds.append("bearer")
        elif oauth1_valid(request):
            self.auth_kinds.append("oauth1")
        else:
            return web.json_response(PROBLEMS["unauthorized"], status=401)
        for i, (path, status, body, headers) in enumerate(self.faults):
            if request.path.startswith(path):
                del self.faults[i]
                return web.json_response(
                    body, status=status, headers={**self._limit_headers(family), **headers}
                )
        if self.remaining[family] <= 0:
            return web.json_response(
                PROBLEMS["too_many_requests"], status=429, headers=self._limit_headers(family)
            )
        self.remaining[family] -= 1
        response = await handler(request)
        response.headers.update(self._limit_headers(family))
        return response

    @staticmethod
    def _fields(request: web.Request, name: str, default: tuple[str, ...]) -> set[str]:
        asked = request.query.get(name, "")
        return {*default, *(f for f in asked.split(",") if f)}

    def _render_post(self, post: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        return {k: v for k, v in post.items() if k in fields}

    def _render_user(self, user: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        return {k: v for k, v in user.items() if k in fields}

    def _page(
        self, request: web.Request, items: list[dict[str, Any]], token_param: str, low: int
    ) -> web.Response:
        query = request.query
        try:
            size = int(query.get("max_results", "10"))
        except ValueError:
            size = 0
        if not low <= size <= 100:
            return web.json_response(
                {"title": "Invalid Request", "type": "https://api.twitter.com/2/problems/"
                 "invalid-request", "detail": "One or more parameters to your request was "
                 "invalid.", "errors": [{"parameters": {"max_results": [str(size)]},
                 "message": f"The `max_results` query parameter value [{size}] is not "
                 f"between {low} and 100"}]}, status=400,
            )  # fmt: skip
        ordered = sorted(items, key=lambda p: int(p["id"]), reverse=True)
        if "since_id" in query:
            ordered = [p for p in ordered if int(p["id"]) > int(query["since_id"])]
        if "until_id" in query:
            ordered = [p for p in ordered if int(p["id"]) < int(query["until_id"])]
        if token_param in query:
            before = _untoken(query[token_param])
            ordered = [p for p in ordered if int(p["id"]) < before]
        page, more = ordered[:size], len(ordered) > size
        tweet_fields = self._fields(request, "tweet.fields", DEFAULT_TWEET_FIELDS)
        user_fields = self._fields(request, "user.fields", DEFAULT_USER_FIELDS)
        expansions = set(query.get("expansions", "").split(","))
        body: dict[str, Any] = {}
        if page:
            body["data"] = [self._render_post(p, tweet_fields) for p in page]
        users: dict[str, dict[str, Any]] = {}
        tweets: dict[str, dict[str, Any]] = {}
        errors: list[dict[str, Any]] = []
        for post in page:
            if "author_id" in expansions and post.get("author_id") in self.users:
                users[post["author_id"]] = self.users[post["author_id"]]
            if "referenced_tweets.id" not in expansions:
                continue
            for ref in post.get("referenced_tweets", []):
                target = self.posts.get(ref["id"])
                if target is None or ref["id"] in self.deleted:
                    error = copy.deepcopy(PROBLEMS["not_found_partial"])
                    error.update(
                        value=ref["id"],
                        resource_id=ref["id"],
                        detail=f"Could not find tweet with referenced_tweets.id: [{ref['id']}].",
                    )
                    errors.append(error)
                    continue
                tweets[ref["id"]] = target
                if "referenced_tweets.id.author_id" in expansions:
                    users[target["author_id"]] = self.users[target["author_id"]]
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = [self._render_user(u, user_fields) for u in users.values()]
        if tweets:
            includes["tweets"] = [self._render_post(t, tweet_fields) for t in tweets.values()]
        if includes:
            body["includes"] = includes
        if errors:
            body["errors"] = errors
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if more:
            meta["next_token"] = _token(page[-1]["id"])
        body["meta"] = meta
        return web.json_response(body)

    def _visible(self) -> list[dict[str, Any]]:
        return [p for p in self.posts.values() if p["id"] not in self.deleted]

    # --- endpoints --------------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        brand = self.users[BRAND_ID]
        return web.json_response(
            {"data": {"id": BRAND_ID, "name": brand["name"], "username": brand["username"]}}
        )

    async def get_mentions(self, request: web.Request) -> web.Response:
        user_id = request.match_info["id"]
        items = [
            p
            for p in self._visible()
            if any(m["id"] == user_id for m in p.get("entities", {}).get("mentions", []))
        ]
        return self._page(request, items, "pagination_token", 5)

    async def get_user_posts(self, request: web.Request) -> web.Response:
        user_id = request.match_info["id"]
        items = [p for p in self._visible() if p["author_id"] == user_id]
        return self._page(request, items, "pagination_token", 5)

    async def get_search(self, request: web.Request) -> web.Response:
        since = request.query.get("since_id")
        if since is not None and int(since) < self.search_floor:
            return web.json_response(PROBLEMS["invalid_since_id"], status=400)
        terms = [
            t.lower()
            for t in request.query.get("query", "").split()
            if not t.startswith("-") and ":" not in t
        ]
        items = [p for p in self._visible() if all(t in p["text"].lower() for t in terms)]
        return self._page(request, items, "next_token", 10)

    async def post_tweet(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.post_bodies.append(body)
        text = body.get("text")
        parent_id = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        parent = self.posts.get(parent_id) if parent_id else None
        if parent_id and (parent is None or parent_id in self.deleted):
            return web.json_response(PROBLEMS["deleted"], status=403)
        if parent is not None and not self._summoned(parent):
            return web.json_response(PROBLEMS["not_summoned"], status=403)
        if any(p["text"] == text for p in self.own_posts()):
            return web.json_response(PROBLEMS["duplicate"], status=403)
        post = self.add_post(text, author=BRAND, reply_to=parent_id)
        self.post_stored.set()
        if self.post_delay:
            await asyncio.sleep(self.post_delay)  # the post is made; the answer comes late
        return web.json_response(
            {"data": {"id": post["id"], "text": text, "edit_history_tweet_ids": [post["id"]]}},
            status=201,
        )

    def _summoned(self, parent: dict[str, Any]) -> bool:
        if any(m["id"] == BRAND_ID for m in parent.get("entities", {}).get("mentions", [])):
            return True
        quoted = [r["id"] for r in parent.get("referenced_tweets", []) if r["type"] == "quoted"]
        return any(self.posts.get(q, {}).get("author_id") == BRAND_ID for q in quoted)


@asynccontextmanager
async def serve_fake_x(fake: FakeX | None = None) -> AsyncIterator[FakeX]:
    """Run the fake X on 127.0.0.1 (a free port) for the duration of the block."""
    fake = fake or FakeX()
    async with serve_app(fake.app) as url:
        fake.url = url
        yield fake
