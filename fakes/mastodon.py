"""A fake Mastodon instance on loopback speaking Mastodon's REST wire format.

Built from the documented Status payload (fakes/payloads/mastodon_status.json): it keeps
statuses and mention notifications, pages with since_id/min_id/max_id, sends X-RateLimit-*
headers, honours Idempotency-Key on POST /api/v1/statuses, can inject faults, and can hold a
post before or after storing it (to kill a client mid-post). Its notification stream (SSE, as
Mastodon's streaming API sends it) carries each new mention notification; tests can also send
raw lines or drop the open streams.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

TOKEN = "secret-token-123"
OWN_ID = "999"
TEMPLATE = json.loads(
    (Path(__file__).parent / "payloads" / "mastodon_status.json").read_text(encoding="utf-8")
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
        self.hold: Literal["before_store", "after_store"] | None = None
        """Hold POST /api/v1/statuses until ``release`` is set: before storing anything (the
        held request is then dropped, as when its client died first) or after storing it (the
        post is made, the answer never comes in time)."""
        self.release = asyncio.Event()
        self.held = 0
        self.post_keys: list[str | None] = []
        self.remaining = 300
        self._next = 110_000_000_000_000_000
        self.streams: list[asyncio.Queue[bytes | None]] = []
        """One queue per open notification stream: chunks to send, None to close it."""
        self.stream_connections = 0
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/api/v1/notifications", self.get_notifications)
        self.app.router.add_get("/api/v1/timelines/tag/{tag}", self.get_tag)
        self.app.router.add_get("/api/v2/search", self.get_search)
        self.app.router.add_get("/api/v1/accounts/verify_credentials", self.verify)
        self.app.router.add_get("/api/v1/statuses/{id}/context", self.get_context)
        self.app.router.add_get("/api/v1/statuses/{id}", self.get_status)
        self.app.router.add_post("/api/v1/statuses", self.post_status)
        self.app.router.add_get("/api/v1/streaming/user/notification", self.stream)
        self.app.on_shutdown.append(self._close_streams)

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
        status: dict[str, Any] = copy.deepcopy(TEMPLATE)
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
            notification = {
                "id": self.new_id(),
                "type": "mention",
                "created_at": when,
                "status": status,
            }
            self.notifications.append(notification)
            self.send_event("notification", json.dumps(notification))
        return status

    def send_event(self, name: str, data: str) -> None:
        """Send one event to every open notification stream."""
        self.send_raw(f"event: {name}\ndata: {data}\n\n".encode())

    def send_raw(self, chunk: bytes) -> None:
        """Send bytes as they are to every open notification stream."""
        for queue in self.streams:
            queue.put_nowait(chunk)

    def drop_streams(self) -> None:
        """End every open notification stream (the server hangs up)."""
        for queue in self.streams:
            queue.put_nowait(None)

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.faults.append((path, status, headers or {}))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
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
        filters: tuple[tuple[str, Callable[[dict[str, Any], int], bool]], ...] = (
            ("since_id", lambda i, v: key(i) > v),
            ("min_id", lambda i, v: key(i) > v),
            ("max_id", lambda i, v: key(i) < v),
        )
        for name, keep in filters:
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
        if q.startswith("https://") and request.query.get("resolve") == "true":
            # a URL with resolve=true looks the post up (fetched from its home instance)
            items = [s for s in self.statuses.values() if q in (s["url"], s["uri"])]
        else:
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
        self.post_keys.append(key)
        if self.hold == "before_store":
            await self._held()
            return web.json_response({"error": "request dropped"}, status=503)
        if key and key in self.idempotency:
            return web.json_response(self.statuses[self.idempotency[key]])
        if not body.get("status"):
            return web.json_response(
                {"error": "Validation failed: Text can't be blank"}, status=422
            )
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
        if self.hold == "after_store":
            await self._held()
        if self.post_delay:
            await asyncio.sleep(self.post_delay)  # the post is made; the answer comes late
        return web.json_response(status)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.streams.append(queue)
        self.stream_connections += 1
        try:
            await response.write(b":)\n")
            while (chunk := await queue.get()) is not None:
                await response.write(chunk)
        except ConnectionResetError:  # the client went away
            pass
        finally:
            self.streams.remove(queue)
        return response

    async def _close_streams(self, app: web.Application) -> None:
        self.drop_streams()

    async def _held(self) -> None:
        self.held += 1
        await self.release.wait()

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [s for s in self.statuses.values() if s["account"]["id"] == OWN_ID]
