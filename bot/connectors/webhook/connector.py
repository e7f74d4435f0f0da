"""The inbound webhook: other tools (Zapier, Make, n8n, Brand24-style exports) push mentions.

A small aiohttp server accepts ``POST {path}`` with a JSON mention (or a list of them), signed
with HMAC-SHA256 over the raw body and a shared secret: ``X-Parley-Signature: sha256=<hex>``.
When the sender also sends ``X-Parley-Timestamp: <unix seconds>``, the signature covers
``"<timestamp>." + body`` instead and requests outside the tolerance window are refused, so a
captured request cannot be replayed later. Checks run in this order: size (413), body time
(408), content type (415), timestamp format (400), signature (401), JSON (400: UTF-8, nesting
depth), schema (422), then queue room (503 with Retry-After). See
``bot.connectors.http.inbound_limits``.

Accepted mentions wait in a bounded in-memory queue (``bot.connectors.http.inbox.PendingQueue``)
that ``fetch`` hands to the normal pipeline (match, dedupe, store, alert). An item leaves the
queue only once the pipeline has stored it (the saved cursor acknowledges it), so a failed or
slow pipeline re-delivers instead of losing. The same mention sent twice is queued once (recent
ids are remembered) and stored once (the store's (source, external_id) key). The queue lives in
memory: a process crash loses what was accepted but not yet stored, which a poll interval of a
few seconds keeps small.

The Meta webhook endpoint (:mod:`bot.connectors.meta.webhook`) shares this module's signature
check, server start and error answers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.connectors.base import ConfiguredSource, Cursor, FetchResult, SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.inbound_limits import (
    hardened_app,
    hardened_runner,
    parse_json,
    parse_timestamp,
)
from bot.connectors.http.inbox import PendingQueue
from bot.domain.models import MAX_TEXT_CHARS, Author, RawMention
from bot.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

SECRET_ENV = "PARLEY_WEBHOOK_SECRET"
"""The environment variable holding the shared secret (at least 16 characters)."""
SIGNATURE_HEADER = "X-Parley-Signature"
TIMESTAMP_HEADER = "X-Parley-Timestamp"
MIN_SECRET_CHARS = 16
MAX_ITEMS_PER_REQUEST = 500
MAX_FETCH_ITEMS = 500
_JSON_TYPES = frozenset({"application/json"})


class WebhookSourceConfig(BaseModel):
    """An HTTP endpoint that receives signed mentions pushed by other tools."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"]
    name: SourceName
    listen: str = Field(default="127.0.0.1", min_length=1, description="address to bind")
    port: int = Field(default=8787, ge=0, le=65_535, description="0 picks a free port (tests)")
    path: str = Field(default="/webhook", pattern=r"^/[A-Za-z0-9/_.-]*$")
    interval: float = Field(default=5.0, ge=1.0, le=3600.0, description="pipeline drain period")
    platform: str = Field(
        default="webhook",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$",
        description="platform of mentions whose payload names none",
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    require_timestamp: bool = Field(
        default=False, description=f"refuse requests without {TIMESTAMP_HEADER}"
    )
    timestamp_tolerance: float = Field(default=300.0, ge=1.0, le=86_400.0)


class WebhookAuthor(BaseModel):
    """Who wrote a pushed mention."""

    model_config = ConfigDict(extra="ignore")

    handle: str = Field(default="", max_length=200)
    name: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=4096)
    followers: int | None = Field(default=None, ge=0)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        return _http_url(value)


class WebhookMention(BaseModel):
    """One pushed mention (the documented schema; unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="the sender's stable id for the item; replays with the same id are dropped",
    )
    url: str | None = Field(default=None, max_length=4096)
    text: str = Field(min_length=1, max_length=200_000)
    html: bool = Field(default=False, description="text is HTML")
    title: str | None = Field(default=None, max_length=1000)
    author: WebhookAuthor = WebhookAuthor()
    created_at: datetime | None = Field(default=None, description="ISO 8601 or unix seconds")
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
    platform: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")
    parent: str | None = Field(default=None, max_length=512, description="the parent post's id")
    context: str | None = Field(default=None, max_length=20_000, description="the parent's text")

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Tools often send numeric ids; they are the same id as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The ``X-Parley-Signature`` value for ``body`` (and ``timestamp``, when one is sent)."""
    message = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(given: str, secret: str, body: bytes, timestamp: str | None = None) -> bool:
    """Whether a signature header's value (``sha256=<hex>``, any case) is :func:`sign`'s,
    compared in constant time."""
    expected = sign(secret, body, timestamp)
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` on ``host:port``: its runner and the port actually bound (0 picks
    a free one). Raises OSError when it cannot listen. Slow clients are cut off
    (:func:`bot.connectors.http.inbound_limits.hardened_runner`)."""
    runner = hardened_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port


def error_response(
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    problems: list[str] | None = None,
) -> web.Response:
    """The JSON error answer ``{"error": message}`` (with ``problems`` when given)."""
    payload: dict[str, Any] = {"error": message}
    if problems is not None:
        payload["problems"] = problems
    return web.json_response(payload, status=status, headers=headers)


class WebhookSource(ConfiguredSource[WebhookSourceConfig]):
    """Receives signed mentions over HTTP and hands them to the pipeline on each ``fetch``
    (``interval``: seconds between drains of the queue)."""

    def __init__(self, config: WebhookSourceConfig, *, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError([f"{SECRET_ENV} must be at least {MIN_SECRET_CHARS} characters"])
        super().__init__(config)
        self._secret = secret
        self._queue: PendingQueue[RawMention] = PendingQueue(config.queue_size)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The port actually bound, once started."""

    @property
    def pending(self) -> int:
        """Mentions accepted and not yet stored."""
        return len(self._queue)

    async def start(self) -> None:
        """Start the HTTP server (idempotent); raises SourceError if it cannot listen."""
        if self._runner is not None:
            return
        app = hardened_app(client_max_size=self.config.max_body_bytes)
        app.router.add_post(self.config.path, self._handle)
        try:
            self._runner, self.port = await serve(app, self.config.listen, self.config.port)
        except OSError as exc:
            where = f"{self.config.listen}:{self.config.port}"
            raise SourceError(
                f"webhook source '{self.name}': cannot listen on {where} ({exc.strerror or exc})"
            ) from None
        log.info(
            "webhook source %r listening on http://%s:%s%s",
            self.name,
            self.config.listen,
            self.port,
            self.config.path,
        )

    async def aclose(self) -> None:
        """Stop the HTTP server; mentions still queued are lost, so their number is logged."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._queue:
            log.warning(
                "webhook source %r stopped with %d mentions not yet acknowledged as stored",
                self.name,
                len(self._queue),
            )

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """Queued mentions not yet stored; the cursor acknowledges them once it is saved."""
        await self.start()
        self._queue.acknowledge(cursor)
        batch = self._queue.batch(MAX_FETCH_ITEMS)
        return FetchResult(
            items=[item for _, item in batch],
            cursor=self._queue.cursor(batch[-1][0] if batch else None),
        )

    async def _handle(self, request: web.Request) -> web.Response:
        # Size (413) and body time (408) were checked by the app's middleware.
        if request.content_type not in _JSON_TYPES:
            return error_response(
                415, f"Content-Type must be application/json, not {request.content_type}"
            )
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if timestamp is not None and parse_timestamp(timestamp) is None:
            return error_response(400, f"{TIMESTAMP_HEADER} must be unix seconds (digits only)")
        body = await request.read()
        refused = self._check_signature(request, body)
        if refused is not None:
            return error_response(401, refused)
        data, invalid = parse_json(body)
        if invalid is not None:
            return error_response(400, invalid)
        parsed = _validate(data)
        if isinstance(parsed, web.Response):
            return parsed
        mentions = [self._mention(item) for item in parsed]
        empty = [i for i, mention in enumerate(mentions) if not mention.text]
        if empty:
            where = ", ".join(f"[{i}].text" if isinstance(data, list) else "text" for i in empty)
            return error_response(
                422, f"invalid mention: {where}: no text left once HTML is removed"
            )
        fresh: list[RawMention] = []
        duplicates = 0
        keys: set[str] = set()
        for mention in mentions:
            if self._queue.seen(mention.external_id) or mention.external_id in keys:
                duplicates += 1
                continue
            keys.add(mention.external_id)
            fresh.append(mention)
        if len(fresh) > self._queue.room:
            retry = max(1, round(self.config.interval))
            log.warning(
                "webhook source %r: queue full (%d waiting), refused %d mentions",
                self.name,
                len(self._queue),
                len(fresh),
            )
            return error_response(
                503, "queue full, retry later", headers={"Retry-After": str(retry)}
            )
        for mention in fresh:
            self._queue.put(mention.external_id, mention)
        return web.json_response({"accepted": len(fresh), "duplicates": duplicates}, status=202)

    def _check_signature(self, request: web.Request, body: bytes) -> str | None:
        """Why the request is not authentic, or None."""
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if timestamp is None and self.config.require_timestamp:
            return f"missing {TIMESTAMP_HEADER}"
        seconds = parse_timestamp(timestamp) if timestamp is not None else None
        if seconds is not None:
            skew = abs(time.time() - seconds)
            if skew > self.config.timestamp_tolerance:
                return (
                    f"{TIMESTAMP_HEADER} is {skew:.0f}s away from now "
                    f"(tolerance {self.config.timestamp_tolerance:g}s)"
                )
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            return f"missing {SIGNATURE_HEADER}"
        if not signature_matches(given, self._secret, body, timestamp):
            return f"bad {SIGNATURE_HEADER} (expected sha256=<hex HMAC-SHA256 of the raw body>)"
        return None

    def _mention(self, item: WebhookMention) -> RawMention:
        platform = item.platform or self.config.platform
        if item.id is not None:
            key = item.id
        else:
            # No id from the sender: the same link and text are the same mention.
            digest = hashlib.sha256(f"{item.url or ''}\n{item.text}".encode()).hexdigest()
            key = f"sha256:{digest}"
        author = item.author
        return RawMention(
            source=self.name,
            platform=platform,
            # Scoped by platform: one webhook may carry ids from several networks.
            external_id=f"{platform}:{key}",
            url=item.url,
            author=Author(
                handle=clean_text(author.handle, limit=200),
                display_name=clean_text(author.name, limit=200) if author.name else None,
                profile_url=author.url,
                reach=author.followers,
            ),
            title=_optional_text(item.title, limit=1000),
            text=clean_text(item.text, html=item.html),
            language=item.language.lower().replace("_", "-") if item.language else None,
            created_at=_utc(item.created_at),
            parent_ref=item.parent,
            thread_context=_optional_text(item.context),
        )


def _optional_text(value: str | None, *, limit: int = MAX_TEXT_CHARS) -> str | None:
    return (clean_text(value, limit=limit) or None) if value else None


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC; a time without a zone is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _validate(data: Any) -> list[WebhookMention] | web.Response:
    """The payload's mentions, or a 422 naming every bad field."""
    if isinstance(data, dict):
        objects, prefix = [data], [""]
    elif isinstance(data, list) and data:
        if len(data) > MAX_ITEMS_PER_REQUEST:
            return error_response(422, f"at most {MAX_ITEMS_PER_REQUEST} mentions per request")
        objects, prefix = data, [f"[{i}]." for i in range(len(data))]
    else:
        return error_response(422, "body must be a mention object or a non-empty list of them")
    items: list[WebhookMention] = []
    problems: list[str] = []
    for obj, where in zip(objects, prefix, strict=True):
        try:
            items.append(WebhookMention.model_validate(obj))
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                field = ".".join(str(part) for part in err["loc"]) or "(item)"
                problems.append(f"{where}{field}: {err['msg']}")
    if problems:
        return error_response(
            422, "invalid mention: " + "; ".join(problems[:20]), problems=problems[:20]
        )
    return items
