"""A loopback fake of Meta's Graph API for the Facebook Page and Instagram connector tests.

It speaks Graph's wire format: ``/{version}/{node}`` and ``/{version}/{node}/{edge}`` paths,
``fields=`` selection with ``field{sub,fields}`` expansion, lists as ``data`` with
``paging.cursors.before/after`` and ``paging.next`` (only when there is a next page), error
objects ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, and the
``X-App-Usage`` / ``X-Business-Use-Case-Usage`` headers. Tokens map to the Page or Instagram
account they act as, with their permissions; faults can be injected per path. Payload shapes
come from fakes/payloads/graph_*.json (examples of Meta's documented answers and webhooks).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hmac
import itertools
import json
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.connectors.meta.graph import DEFAULT_API_VERSION
from fakes.loopback import serve_app

FIXTURES = Path(__file__).parent / "payloads"
VERSION = DEFAULT_API_VERSION
PAGE_ID = "104512345678901"
PAGE_NAME = "Acme Cloud"
IG_USER_ID = "17841400000000001"
IG_USERNAME = "acmecloud"
PAGE_TOKEN = "EAAG-page-token-secret-0123456789"
IG_TOKEN = "EAAG-ig-token-secret-9876543210"
PAGE_PERMISSIONS = frozenset(
    {"pages_read_engagement", "pages_read_user_engagement", "pages_manage_engagement"}
)
IG_PERMISSIONS = frozenset({"instagram_basic", "instagram_manage_comments"})


def fixture(name: str) -> Any:
    """A JSON payload from fakes/payloads."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def graph_time(when: datetime) -> str:
    """Graph's time format: ``2026-01-05T09:30:00+0000``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Actor:
    """Whom a token acts as, and what it may do."""

    id: str
    name: str
    permissions: frozenset[str]
    expired: bool = False


ACTOR = web.RequestKey("actor", Actor)


@dataclass
class Fault:
    """An error answer injected for the next ``times`` matching requests."""

    method: str
    path: str
    status: int
    error: dict[str, Any]
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(
    message: str, code: int, subcode: int | None = None, kind: str = "OAuthException"
) -> dict[str, Any]:
    """Graph's error object."""
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return error


def split_fields(spec: str) -> list[tuple[str, str | None]]:
    """``a,b{c,d},e`` → [(a, None), (b, "c,d"), (e, None)] (nesting respected)."""
    out: list[tuple[str, str | None]] = []
    depth, start = 0, 0
    for i, ch in enumerate(spec + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = spec[start:i].strip()
            start = i + 1
            if not part:
                continue
            if "{" in part:
                name, _, sub = part.partition("{")
                out.append((name, sub[:-1]))
            else:
                out.append((part, None))
    return out


class FakeGraph:
    """An in-memory Page and Instagram account behind the Graph API."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, Actor] = {
            PAGE_TOKEN: Actor(PAGE_ID, PAGE_NAME, PAGE_PERMISSIONS),
            IG_TOKEN: Actor(IG_USER_ID, IG_USERNAME, IG_PERMISSIONS),
        }
        self.faults: list[Fault] = []
        self.canned: dict[str, Any] = {}
        """Path → a fixed JSON answer (a recorded response served as-is)."""
        self.requests: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.app_usage = {"call_count": 5, "total_cputime": 2, "total_time": 3}
        self.app_secret: str | None = None
        """Set: the app requires ``appsecret_proof`` on every call."""
        self.buc_usage: dict[str, Any] | None = None
        self.post_delay = 0.0
        self._ids = itertools.count(1001)
        self._clock = datetime.now(UTC) - timedelta(hours=1)
        self.nodes[PAGE_ID] = {"_type": "page", "id": PAGE_ID, "name": PAGE_NAME}
        self.nodes[IG_USER_ID] = {"_type": "ig_user", "id": IG_USER_ID, "username": IG_USERNAME}
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/{version}/{node}", self.get_node)
        self.app.router.add_get("/{version}/{node}/{edge}", self.get_edge)
        self.app.router.add_post("/{version}/{node}/{edge}", self.post_edge)

    # --- building the world ---------------------------------------------------------------

    def tick(self, seconds: float = 1.0) -> datetime:
        """Advance the fake's clock (items get increasing creation times)."""
        self._clock += timedelta(seconds=seconds)
        return self._clock

    def add_post(self, message: str, *, page_id: str = PAGE_ID) -> dict[str, Any]:
        """A post published by the Page."""
        post_id = f"{page_id}_{next(self._ids)}"
        post = {
            "_type": "post",
            "_page": page_id,
            "id": post_id,
            "message": message,
            "created_time": graph_time(self.tick()),
            "from": {"id": PAGE_ID, "name": PAGE_NAME},
            "permalink_url": f"https://www.facebook.com/{post_id.replace('_', '/posts/')}",
        }
        self.nodes[post_id] = post
        return post

    def add_tagged(self, message: str, *, author: str = "Jo Customer") -> dict[str, Any]:
        """A post by someone else that tags the Page."""
        post = self.add_post(message, page_id="100000000000777")
        post["from"] = {"id": "100000000000777", "name": author}
        post["_tags"] = [PAGE_ID]
        return post

    def add_comment(
        self,
        parent: dict[str, Any],
        message: str,
        *,
        author: tuple[str, str] = ("5550001", "Dana Customer"),
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A comment on a post, or a reply to a comment."""
        post = parent if parent["_type"] == "post" else self.nodes[parent["_post"]]
        number = next(self._ids)
        comment_id = f"{post['id'].split('_')[1]}_{number}"
        comment = {
            "_type": "comment",
            "_seq": number,
            "_post": post["id"],
            "_parent": None if parent["_type"] == "post" else parent["id"],
            "id": comment_id,
            "message": message,
            "created_time": graph_time(at or self.tick()),
            "from": {"id": author[0], "name": author[1]},
            "permalink_url": f"{post['permalink_url']}?comment_id={number}",
        }
        self.nodes[comment_id] = comment
        return comment

    def add_media(
        self,
        caption: str,
        *,
        owner: tuple[str, str] = (IG_USER_ID, IG_USERNAME),
        media_id: str | None = None,
    ) -> dict[str, Any]:
        """A media object (of the Instagram account unless ``owner`` says otherwise)."""
        media_id = media_id or f"1790{next(self._ids):013d}"
        media = {
            "_type": "media",
            "_owner": owner[0],
            "id": media_id,
            "caption": caption,
            "timestamp": graph_time(self.tick()),
            "permalink": f"https://www.instagram.com/p/C{media_id[-6:]}/",
            "username": owner[1],
        }
        self.nodes[media_id] = media
        return media

    def add_ig_comment(
        self,
        parent: dict[str, Any],
        text: str,
        *,
        username: str = "dana.customer",
        user_id: str = "9000001",
        hidden: bool = False,
        comment_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A comment on a media object, or a reply to a top-level comment."""
        media = parent if parent["_type"] == "media" else self.nodes[parent["_media"]]
        comment_id = comment_id or f"1800{next(self._ids):013d}"
        comment = {
            "_type": "ig_comment",
            "_media": media["id"],
            "id": comment_id,
            "text": text,
            "timestamp": graph_time(at or self.tick()),
            "username": username,
            "from": {"id": user_id, "username": username},
            "hidden": hidden,
        }
        if parent["_type"] == "ig_comment":
            comment["parent_id"] = parent.get("parent_id") or parent["id"]
        self.nodes[comment_id] = comment
        return comment

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        error: dict[str, Any],
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``path`` with an error."""
        self.faults.append(Fault(method, path, status, error, times, headers or {}))

    # --- serving ---------------------------------------------------------------------------

    def _usage_headers(self) -> dict[str, str]:
        headers = {"X-App-Usage": json.dumps(self.app_usage)}
        if self.buc_usage is not None:
            headers["X-Business-Use-Case-Usage"] = json.dumps({PAGE_ID: [self.buc_usage]})
        return headers

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        usage = self._usage_headers()
        if "access_token" in request.query:
            return self._error(400, graph_error("tokens go in the header in these tests", 100))
        auth = request.headers.get("Authorization", "")
        actor = self.actors.get(auth.removeprefix("Bearer "))
        if self.app_secret is not None and actor is not None:
            # "Require App Secret": every call proves it knows the secret for this token
            proof = hmac.new(self.app_secret.encode(), auth[7:].encode(), "sha256").hexdigest()
            if request.query.get("appsecret_proof") != proof:
                return self._error(
                    400,
                    graph_error(
                        "API calls from the server require an appsecret_proof argument", 100
                    ),
                )
        if not auth.startswith("Bearer ") or actor is None:
            return self._error(
                400, graph_error("Invalid OAuth access token - Cannot parse access token", 190)
            )
        if actor.expired:
            return self._error(
                400,
                graph_error(
                    "Error validating access token: Session has expired on Tuesday, "
                    f"05-Jan-26 09:00:00 PST. (access_token={auth[7:]})",
                    190,
                    463,
                ),
            )
        for fault in self.faults:
            if fault.method == request.method and fault.path in request.path and fault.times > 0:
                fault.times -= 1
                return self._error(fault.status, fault.error, {**usage, **fault.headers})
        request[ACTOR] = actor
        for path, body in self.canned.items():
            if request.method == "GET" and request.path.endswith(path):
                return web.json_response(body, headers=usage)
        response = await handler(request)
        response.headers.update(usage)
        return response

    @staticmethod
    def _error(
        status: int, error: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.json_response({"error": error}, status=status, headers=headers)

    def _missing(self, node_id: str) -> web.Response:
        return self._error(
            400,
            graph_error(
                f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                100,
                33,
                "GraphMethodException",
            ),
        )

    def _needs(self, request: web.Request, permission: str) -> web.Response | None:
        actor: Actor = request[ACTOR]
        if permission in actor.permissions:
            return None
        return self._error(
            403,
            graph_error(f"(#200) Requires {permission} permission to manage the object", 200),
        )

    def render(self, node: dict[str, Any], spec: str | None) -> dict[str, Any]:
        """The node with only the requested fields (``id`` always), expansions applied."""
        out: dict[str, Any] = {"id": node["id"]}
        for name, sub in split_fields(spec or "id"):
            value = self._field(node, name, sub)
            if value is not None:
                out[name] = value
        return out

    def _field(self, node: dict[str, Any], name: str, sub: str | None) -> Any:
        if name == "parent" and node.get("_type") == "comment":
            parent = self.nodes.get(node.get("_parent") or "")
            return None if parent is None else self.render(parent, sub or "id,message")
        if name == "replies" and node.get("_type") == "ig_comment":
            return self._list(self._replies(node["id"]), {"fields": sub or "id"}, "replies")
        if name == "media" and node.get("_type") == "ig_comment":
            return self.render(self.nodes[node["_media"]], sub or "id")
        if name == "comments" and node.get("_type") == "media":
            return self._list(self._top_comments(node["id"]), {"fields": sub or "id"}, "comments")
        value = node.get(name)
        return copy.deepcopy(value) if not name.startswith("_") else None

    def _list(
        self, items: list[dict[str, Any]], query: Any, path: str, *, limit: int = 25
    ) -> dict[str, Any]:
        limit = int(query.get("limit", limit))
        start = int(base64.b64decode(query["after"]).decode()) if "after" in query else 0
        chosen = items[start : start + limit]
        body: dict[str, Any] = {"data": [self.render(i, query.get("fields")) for i in chosen]}
        if chosen:
            body["paging"] = {
                "cursors": {
                    "before": base64.b64encode(str(start).encode()).decode(),
                    "after": base64.b64encode(str(start + len(chosen)).encode()).decode(),
                }
            }
            if start + len(chosen) < len(items):
                after = body["paging"]["cursors"]["after"]
                body["paging"]["next"] = (
                    f"https://graph.facebook.com/{VERSION}/{path}?limit={limit}&after={after}"
                    "&access_token=EAAG-leaked-in-next-url"
                )
        return body

    def _comments_of(self, node: dict[str, Any], query: Any) -> list[dict[str, Any]]:
        comments = [n for n in self.nodes.values() if n.get("_type") == "comment"]
        if node["_type"] == "post":
            comments = [c for c in comments if c["_post"] == node["id"]]
            if query.get("filter", "toplevel") == "toplevel":
                comments = [c for c in comments if c["_parent"] is None]
        else:
            comments = [c for c in comments if c["_parent"] == node["id"]]
        comments.sort(key=lambda c: (c["created_time"], c["_seq"]))
        if query.get("order") == "reverse_chronological":
            comments.reverse()
        return comments

    def _top_comments(self, media_id: str) -> list[dict[str, Any]]:
        top = [
            n
            for n in self.nodes.values()
            if n.get("_type") == "ig_comment"
            and n["_media"] == media_id
            and "parent_id" not in n
            and not n.get("_deleted")
        ]
        return sorted(top, key=lambda c: str(c["timestamp"]), reverse=True)

    def _replies(self, comment_id: str) -> list[dict[str, Any]]:
        replies = [n for n in self.nodes.values() if n.get("parent_id") == comment_id]
        return sorted(replies, key=lambda c: str(c["timestamp"]))

    async def get_node(self, request: web.Request) -> web.Response:
        node = self.nodes.get(request.match_info["node"])
        if node is None or node.get("_deleted"):
            return self._missing(request.match_info["node"])
        spec = request.query.get("fields")
        if node["_type"] == "ig_user" and spec and spec.startswith("mentioned_"):
            return self._mentioned(request, spec)
        return web.json_response(self.render(node, spec))

    def _mentioned(self, request: web.Request, spec: str) -> web.Response:
        match = re.fullmatch(
            r"mentioned_(comment|media)\.(?:comment|media)_id\((\d+)\)\{(.*)\}", spec
        )
        if match is None:
            return self._error(400, graph_error("(#100) Invalid fields", 100))
        refused = self._needs(request, "instagram_manage_comments")
        if refused is not None:
            return refused
        target = self.nodes.get(match.group(2))
        if target is None or target.get("_deleted"):
            return self._missing(match.group(2))
        return web.json_response(
            {f"mentioned_{match.group(1)}": self.render(target, match.group(3)), "id": IG_USER_ID}
        )

    async def get_edge(self, request: web.Request) -> web.Response:
        node_id, edge = request.match_info["node"], request.match_info["edge"]
        node = self.nodes.get(node_id)
        if node is None or node.get("_deleted"):
            return self._missing(node_id)
        query = request.query
        path = f"{node_id}/{edge}"
        kind = node["_type"]
        if kind == "page" and edge in ("posts", "published_posts"):
            refused = self._needs(request, "pages_read_engagement")
            posts = [
                n for n in self.nodes.values() if n.get("_type") == "post" and n["_page"] == node_id
            ]
            posts.sort(key=lambda p: p["created_time"], reverse=True)
            return refused or web.json_response(self._list(posts, query, path))
        if kind == "page" and edge == "tagged":
            refused = self._needs(request, "pages_read_engagement")
            tagged = [n for n in self.nodes.values() if node_id in n.get("_tags", [])]
            tagged.sort(key=lambda p: p["created_time"], reverse=True)
            return refused or web.json_response(self._list(tagged, query, path))
        if kind in ("post", "comment") and edge == "comments":
            refused = self._needs(request, "pages_read_user_engagement")
            return refused or web.json_response(
                self._list(self._comments_of(node, query), query, path)
            )
        if kind == "ig_user" and edge == "media":
            refused = self._needs(request, "instagram_basic")
            media = [
                n
                for n in self.nodes.values()
                if n.get("_type") == "media" and n["_owner"] == node_id
            ]
            media.sort(key=lambda m: m["timestamp"], reverse=True)
            return refused or web.json_response(self._list(media, query, path))
        if kind == "media" and edge == "comments":
            refused = self._needs(request, "instagram_manage_comments")
            top = self._top_comments(node_id)
            return refused or web.json_response(self._list(top, query, path))
        if kind == "ig_comment" and edge == "replies":
            refused = self._needs(request, "instagram_manage_comments")
            replies = self._replies(node_id)
            return refused or web.json_response(self._list(replies, query, path))
        return self._error(400, graph_error(f"(#100) Unknown edge {edge} on {kind}", 100))

    async def post_edge(self, request: web.Request) -> web.Response:
        node_id, edge = request.match_info["node"], request.match_info["edge"]
        node = self.nodes.get(node_id)
        actor: Actor = request[ACTOR]
        form = dict(await request.post())
        values = {**request.query, **{k: str(v) for k, v in form.items()}}
        if node is None or node.get("_deleted"):
            return self._error(
                400,
                graph_error(
                    f"Unsupported post request. Object with ID '{node_id}' does not exist, "
                    "cannot be loaded due to missing permissions, or does not support this "
                    "operation.",
                    100,
                    33,
                    "GraphMethodException",
                ),
            )
        message = values.get("message", "")
        now = datetime.now(UTC)
        self._clock = max(self._clock, now)
        if not message:
            return self._error(400, graph_error("(#100) Missing message", 100))
        if node["_type"] in ("post", "comment") and edge == "comments":
            refused = self._needs(request, "pages_manage_engagement")
            if refused is not None:
                return refused
            created = self.add_comment(node, message, author=(actor.id, actor.name), at=now)
        elif node["_type"] == "ig_comment" and edge == "replies":
            refused = self._needs(request, "instagram_manage_comments")
            if refused is not None:
                return refused
            created = self.add_ig_comment(
                node, message, username=actor.name, user_id=actor.id, at=now
            )
        elif node["_type"] == "ig_user" and edge == "mentions":
            target = self.nodes.get(values.get("comment_id") or values.get("media_id", ""))
            if target is None:
                return self._missing(values.get("comment_id", ""))
            created = self.add_ig_comment(
                target, message, username=actor.name, user_id=actor.id, at=now
            )
        else:
            return self._error(400, graph_error(f"(#100) Cannot post to {edge}", 100))
        self.created.append(created)
        if self.post_delay:
            await asyncio.sleep(self.post_delay)  # the comment exists; the answer comes late
        return web.json_response({"id": created["id"]})

    def by(self, actor_id: str) -> list[dict[str, Any]]:
        """Comments created by ``actor_id`` (the Page or the Instagram account)."""
        return [
            n
            for n in self.nodes.values()
            if (n.get("from") or {}).get("id") == actor_id and n.get("_type") != "post"
        ]


def serve(fake: FakeGraph) -> AbstractAsyncContextManager[str]:
    """Run ``fake`` on loopback; yields its base URL."""
    return serve_app(fake.app)
