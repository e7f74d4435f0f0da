"""Mastodon connector: mentions, hashtags and search as a source; replies as a publisher.

The source polls, per route, with a cursor holding the newest id seen: mention notifications
(``types[]=mention``), hashtag timelines and, when configured, ``v2/search``. A route never seen
before takes only its newest page (the core's look-back rule does the rest); a known route pages
forward with ``min_id`` so a busy spell is read without gaps, up to ``max_pages`` pages a poll.
The calls themselves (pages, mentions, parent posts) are in :mod:`bot.connectors.mastodon.reader`.
With ``streaming`` on, mention notifications also arrive in real time
(:mod:`bot.connectors.mastodon.stream`) into a queue handed over every few seconds; mention
notifications are then polled only every ``poll_interval`` seconds as a fallback (hashtags and
searches keep ``interval``), and as before once the stream has ended for good.

The publisher answers with ``POST /api/v1/statuses`` carrying the reply's idempotency key
(Mastodon keeps it one hour), and after a crash looks for Parley's own reply under the parent.

Both share :class:`~bot.connectors.mastodon.api.MastodonClient`, which tracks
``X-RateLimit-*`` (300 calls / 5 min per account): a poll stops early when the budget nears the
configured reserve.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx

from bot.connectors.base import ClientSource, Cursor, FetchResult, PublishResult
from bot.connectors.clean import clean_text
from bot.connectors.http.inbox import PendingQueue
from bot.connectors.http.outbound_limits import failure
from bot.connectors.mastodon.api import (
    PLATFORM,
    MastodonClient,
    MastodonSourceConfig,
    Visibility,
    parse_time,
    source_message,
    token_rejected,
)
from bot.connectors.mastodon.reader import StatusReader
from bot.connectors.mastodon.stream import MastodonStream
from bot.domain.limits import LINK_WEIGHT, link_weighted_length
from bot.domain.models import Mention, RawMention, Reply
from bot.errors import PublishError, SourceError

log = logging.getLogger(__name__)

STREAM_DRAIN_INTERVAL = 5.0
"""Seconds between hand-overs of streamed mentions to the pipeline while streaming."""
STREAM_QUEUE_SIZE = 1000
MAX_STREAMED_ITEMS = 200
"""Streamed mentions handed over per fetch."""

Add = Callable[[RawMention | None], None]
Route = tuple[str, str, list[tuple[str, str]], str]
"""(cursor key, path, fixed params, how statuses sit in the answer: notifications, statuses
or search)."""

_VISIBILITY_ORDER: tuple[Visibility, ...] = ("public", "unlisted", "private", "direct")
_REMOTE_MENTION = re.compile(r"(?<![\w@])(@\w+)@[\w.-]+\w")


class MastodonSource(ClientSource[MastodonSourceConfig, MastodonClient]):
    """Polls one account's mentions, hashtags and searches (see the module docstring)."""

    def __init__(self, config: MastodonSourceConfig, client: MastodonClient) -> None:
        super().__init__(config, client)
        self.reader = StatusReader(config, client)
        self._inbox: PendingQueue[RawMention] | None = (
            PendingQueue(STREAM_QUEUE_SIZE) if config.streaming else None
        )
        self.stream: MastodonStream | None = None  # started by the first fetch
        # time.monotonic() when, while streaming, mentions and the other routes are due
        self._mentions_due = 0.0
        self._others_due = 0.0

    @classmethod
    def create(
        cls, config: MastodonSourceConfig, token: str, *, http: httpx.AsyncClient | None = None
    ) -> MastodonSource:
        """A source with its own client for ``config.base_url``."""
        client = MastodonClient(
            config.base_url,
            token,
            timeout=config.timeout,
            client=http,
            allow_private=config.allow_private,
        )
        return cls(config, client)

    @property
    def rate_limit_remaining(self) -> int | None:
        """Calls left in the instance's current window (health display)."""
        return self.client.budget.remaining

    @property
    def interval(self) -> float:
        """Seconds between fetches: the stream's hand-over period while it runs, else
        ``interval``."""
        return STREAM_DRAIN_INTERVAL if self._streaming else self.config.interval

    @property
    def _streaming(self) -> bool:
        """Streaming is on and has not ended for good (rejected token, no streaming)."""
        return self.config.streaming and (self.stream is None or self.stream.ended is None)

    async def aclose(self) -> None:
        """Stop the stream, then close the HTTP client if it was created here."""
        if self.stream is not None:
            await self.stream.aclose()
        await super().aclose()

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """Mentions the stream delivered (oldest first), then, when due, new statuses on every
        route since ``cursor``; the new cursor covers what was read."""
        new_cursor = dict(cursor)
        items: list[RawMention] = []
        seen: set[str] = set()
        context_budget = [self.config.max_context_fetches]

        def add(mention: RawMention | None) -> None:
            if mention is not None and mention.external_id not in seen:
                seen.add(mention.external_id)
                items.append(mention)

        if self._inbox is not None:
            self._start_stream()
            await self._drain(cursor, new_cursor, add, context_budget)
        streaming, now = self._streaming, time.monotonic()
        mentions = self.config.mentions and (not streaming or now >= self._mentions_due)
        others = not streaming or now >= self._others_due
        if mentions or others:
            try:
                await self._poll(
                    cursor, new_cursor, add, context_budget, self._routes(mentions, others)
                )
            except SourceError as exc:
                if not items:
                    raise
                # Streamed mentions are not held back: the poll stays due (the next fetch
                # tries again, and reports the error if it fails with nothing else to hand over).
                log.warning(
                    "mastodon source %r: poll failed (%s); handing over %d streamed mentions",
                    self.name,
                    exc,
                    len(items),
                )
                return FetchResult(items=items, cursor=new_cursor)
            if mentions:
                self._mentions_due = time.monotonic() + self.config.poll_interval
            if others:
                self._others_due = time.monotonic() + self.config.interval
        return FetchResult(items=items, cursor=new_cursor)

    def _start_stream(self) -> None:
        """Open the stream on the first fetch (building a source opens no connection)."""
        if self.stream is None:
            self.stream = MastodonStream(self.client, self.config, self._streamed)
            self.stream.start()

    def _streamed(self, mention: RawMention) -> None:
        """Queue a mention the stream delivered until the pipeline has stored it."""
        assert self._inbox is not None
        if self._inbox.seen(mention.external_id):
            return
        if not self._inbox.room:
            log.warning(
                "mastodon source %r: %d streamed mentions wait already; "
                "status %s is left to the next poll",
                self.name,
                len(self._inbox),
                mention.external_id[:40],
            )
            return
        self._inbox.put(mention.external_id, mention)

    async def _drain(
        self, cursor: Cursor, new_cursor: Cursor, add: Add, context_budget: list[int]
    ) -> None:
        """Hand over the streamed mentions, oldest first; they leave the queue once the cursor
        naming them is saved (keys ``run``/``acked``)."""
        assert self._inbox is not None
        self._inbox.acknowledge(cursor)
        last: int | None = None
        for seq, mention in self._inbox.batch(MAX_STREAMED_ITEMS):
            add(await self.reader.with_context(mention, context_budget))
            last = seq
        new_cursor.update(self._inbox.cursor(last))

    async def _poll(
        self,
        cursor: Cursor,
        new_cursor: Cursor,
        add: Add,
        context_budget: list[int],
        routes: list[Route],
    ) -> None:
        """Read ``routes``, each from its position in ``cursor``."""
        others = any(extract != "notifications" for *_, extract in routes)
        own_id = await self.reader.own_id() if others else None
        for key, path, params, extract in routes:
            if self.client.budget.below(self.config.rate_limit_reserve):
                log.warning(
                    "mastodon source %r: %s calls left before the rate limit; "
                    "skipping the rest of this poll",
                    self.name,
                    self.client.budget.remaining,
                )
                break
            statuses, newest = await self.reader.read_route(path, params, cursor.get(key), extract)
            if newest is not None:
                new_cursor[key] = newest
            for status in statuses:
                add(await self.reader.mention(status, own_id, context_budget))

    def _routes(self, mentions: bool, others: bool) -> list[Route]:
        """The mention route (if ``mentions``) and the hashtag and search routes (if
        ``others``)."""
        routes: list[Route] = []
        if mentions:
            routes.append(
                ("mentions", "/api/v1/notifications", [("types[]", "mention")], "notifications")
            )
        if not others:
            return routes
        for tag in self.config.hashtags:
            path = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
            routes.append((f"tag:{tag.lower()}", path, [], "statuses"))
        for query in self.config.search_queries:
            params = [("type", "statuses"), ("q", query), ("resolve", "false")]
            routes.append((f"search:{query}", "/api/v2/search", params, "search"))
        return routes


class MastodonPublisher:
    """Posts approved replies to mentions found on the same instance."""

    def __init__(
        self, config: MastodonSourceConfig, client: MastodonClient, *, name: str = PLATFORM
    ) -> None:
        self.config = config
        self.client = client
        self.name = name

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Reply under the mention's status; the idempotency key makes a resend harmless."""
        status_id = await self._status_id(mention)
        parent = await self._parent(status_id)
        text = reply_text(reply.text, mention.author.handle)
        length = status_length(text)
        if length > self.config.max_characters:
            raise PublishError(
                f"reply is {length} characters; the instance allows "
                f"{self.config.max_characters} (links count as {LINK_WEIGHT})",
                permanent=True,
            )
        body: dict[str, Any] = {
            "status": text,
            "in_reply_to_id": status_id,
            "visibility": _narrowest(self.config.visibility, parent.get("visibility")),
        }
        language = self.config.reply_language or mention.language
        if language:
            body["language"] = language.split("-")[0]
        response = await self._send(
            "POST",
            "/api/v1/statuses",
            json=body,
            headers={"Idempotency-Key": reply.idempotency_key},
        )
        return _result(response.json())

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """Parley's own reply under the parent, posted after approval, if there is one."""
        try:
            own_id = await self.client.own_account_id()
            if own_id is None:
                return None
            status_id = await self._status_id(mention)
            response = await self.client.request("GET", f"/api/v1/statuses/{status_id}/context")
            if response.status_code != 200:
                return None
            descendants = response.json().get("descendants") or []
        except (httpx.HTTPError, ValueError, AttributeError, PublishError):
            # The Idempotency-Key still guards the resend that follows (for one hour).
            log.warning("mastodon: could not look for reply #%d under its parent", reply.id)
            return None
        # A reply approved earlier and answered by hand would predate this approval.
        not_before = reply.created_at - timedelta(minutes=1)
        for status in descendants:
            try:
                created = parse_time(status["created_at"])
                if (
                    status["account"]["id"] == own_id
                    and status.get("in_reply_to_id") == status_id
                    and created is not None
                    and created >= not_before
                ):
                    return _result(status)
            except (KeyError, TypeError):
                continue
        return None

    async def _parent(self, status_id: str) -> dict[str, Any]:
        response = await self._send("GET", f"/api/v1/statuses/{status_id}")
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def _status_id(self, mention: Mention) -> str:
        """The status id on this instance. Ids are local to an instance, so a status relayed by
        the inbound webhook is looked up by its URL (``resolve`` fetches remote ones)."""
        if not mention.relayed:
            return mention.external_id
        if not mention.url:
            raise PublishError(
                "mastodon: the webhook sent this post without its URL, so this instance cannot "
                "find it; reply by hand",
                permanent=True,
            )
        params = [("q", mention.url), ("type", "statuses"), ("resolve", "true"), ("limit", "1")]
        response = await self._send("GET", "/api/v2/search", params=params)
        statuses = response.json().get("statuses") if response.content else None
        if not statuses or not isinstance(statuses[0], dict) or "id" not in statuses[0]:
            raise PublishError(
                f"mastodon: this instance cannot find {mention.url}; reply by hand", permanent=True
            )
        return str(statuses[0]["id"])

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TimeoutException:
            raise PublishError("mastodon: timed out (will retry with the same key)") from None
        except httpx.HTTPError as exc:
            raise PublishError(f"mastodon: {failure(exc)}") from None
        status = response.status_code
        if status in (200, 201):
            return response
        detail = _api_error(response)
        if status in (404, 410):
            raise PublishError("mastodon: the post was deleted or is not visible", permanent=True)
        if status == 401:
            raise PublishError(
                f"mastodon: the access token in {self.config.token_env} was rejected "
                "(expired, revoked or mistyped)",
                permanent=True,
            )
        if status == 403:
            raise PublishError(f"mastodon: not allowed (HTTP 403{detail})", permanent=True)
        if status == 422:
            raise PublishError(f"mastodon: text rejected (HTTP 422{detail})", permanent=True)
        if status == 429:
            raise PublishError(
                "mastodon: rate limited (HTTP 429)",
                retry_after=self.client.budget.retry_after(response),
            )
        if status >= 500:
            raise PublishError(f"mastodon: server error (HTTP {status})")
        raise PublishError(f"mastodon: HTTP {status}{detail}", permanent=True)


def reply_text(text: str, handle: str) -> str:
    """The reply starting with ``@acct`` (Mastodon's convention), unless it already names them."""
    if not handle:
        return text
    acct = "@" + handle.removeprefix("@")
    if re.search(rf"(?<![\w@]){re.escape(acct)}(?![\w@.-])", text, re.IGNORECASE):
        return text
    return f"{acct} {text}"


def status_length(text: str) -> int:
    """Characters as Mastodon counts them: links are 23, ``@user@domain`` counts as ``@user``."""
    return link_weighted_length(_REMOTE_MENTION.sub(r"\1", text))


def _result(status: Any) -> PublishResult:
    if not isinstance(status, dict) or not isinstance(status.get("id"), str):
        raise PublishError("mastodon: the instance answered without a status id")
    return PublishResult(posted_id=status["id"], url=status.get("url") or status.get("uri"))


def _narrowest(configured: Visibility, parent: Any) -> Visibility:
    """The more private of the configured visibility and the mention's own."""
    if parent not in _VISIBILITY_ORDER:
        return configured
    return max(configured, parent, key=_VISIBILITY_ORDER.index)


def _api_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {clean_text(error, limit=200)}" if isinstance(error, str) and error else ""


async def signed_in_as(source: MastodonSource) -> str:
    """The account the token belongs to (``verify_credentials``)."""
    response = await source.client.request("GET", "/api/v1/accounts/verify_credentials")
    if response.status_code == 401:
        raise token_rejected(source.config)
    if response.status_code != 200:
        what = f"verify_credentials answered HTTP {response.status_code}"
        raise SourceError(source_message(source.config, what))
    return f"signed in as @{response.json().get('acct', '?')}"
