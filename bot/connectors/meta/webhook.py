"""Meta webhooks: the HTTP endpoint a Facebook Page or Instagram source listens on.

Meta first checks the callback URL with ``GET {path}?hub.mode=subscribe&hub.verify_token=…
&hub.challenge=…``: the challenge is echoed as plain text when the verify token matches, else
403. Events then arrive as ``POST {path}`` with a JSON body signed by the app:
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed by the App Secret>``,
compared in constant time over the exact bytes received. Checks run in this order: size (413),
body time (408), signature (401 missing, 403 wrong), JSON (400: UTF-8, nesting depth); see
``inbound_limits``.

A body is ``{"object": "page"|"instagram", "entry": [{"id", "time", "changes": [{"field",
"value"}]}]}``. The owning source decides which changes concern it (its ``accept`` function
returns a key naming the event, or None to ignore it); accepted changes wait in a
:class:`~bot.connectors.http.inbox.PendingQueue` that the source's ``fetch`` drains through the
normal pipeline, so webhook and polling share one dedupe. A delivery Meta sends again (same
body, or the same comment in another batch) is queued once. A full queue answers 503 and Meta
delivers again later.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.connectors.http.inbound_limits import hardened_app, parse_json
from bot.connectors.http.inbox import PendingQueue
from bot.connectors.webhook.connector import error_response, serve, signature_matches
from bot.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MIN_VERIFY_TOKEN_CHARS = 8
MIN_APP_SECRET_CHARS = 16


APP_SECRET_ENV = "META_APP_SECRET"
"""Where the Meta app's App Secret is read from unless a source names another variable."""


class MetaWebhookConfig(BaseModel):
    """Where a Facebook or Instagram source receives Meta's webhook events."""

    model_config = ConfigDict(extra="forbid")

    listen: str = Field(default="127.0.0.1", min_length=1, description="address to bind")
    port: int = Field(default=8788, ge=0, le=65_535, description="0 picks a free port (tests)")
    path: str = Field(default="/meta/facebook", pattern=r"^/[A-Za-z0-9/_.-]*$")
    verify_token_env: str = Field(
        default="META_WEBHOOK_VERIFY_TOKEN",
        description="environment variable holding the verify token typed into the Meta app",
    )
    app_secret_env: str = Field(
        default=APP_SECRET_ENV, description="environment variable holding the App Secret"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    drain_interval: float = Field(
        default=5.0, ge=1.0, le=3600.0, description="seconds between hand-overs to the pipeline"
    )
    poll_interval: float = Field(
        default=1800.0, ge=60.0, le=86_400.0, description="polling fallback while webhooks are on"
    )


@dataclass(frozen=True)
class Change:
    """One ``entry[].changes[]`` item of a verified delivery."""

    object: str
    entry_id: str
    field: str
    value: dict[str, Any]


Accept = Callable[[Change], str | None]
"""Returns the event's key (e.g. ``comment:123``) when the source wants it, else None."""


class MetaWebhook:
    """The aiohttp endpoint; verified changes the owner accepts wait in :attr:`queue`."""

    def __init__(
        self,
        config: MetaWebhookConfig,
        *,
        owner: str,
        verify_token: str,
        app_secret: str,
        accept: Accept,
    ) -> None:
        problems = []
        if len(verify_token) < MIN_VERIFY_TOKEN_CHARS:
            problems.append(
                f"{config.verify_token_env} must be at least {MIN_VERIFY_TOKEN_CHARS} characters"
            )
        if len(app_secret) < MIN_APP_SECRET_CHARS:
            problems.append(
                f"{config.app_secret_env} must be the app's App Secret "
                f"({MIN_APP_SECRET_CHARS}+ characters, App settings → Basic)"
            )
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.owner = owner
        self.queue: PendingQueue[Change] = PendingQueue(config.queue_size)
        self._verify_token = verify_token
        self._app_secret = app_secret
        self._accept = accept
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The port actually bound, once started."""

    async def start(self) -> None:
        """Start the HTTP server (idempotent); raises SourceError if it cannot listen."""
        if self._runner is not None:
            return
        app = hardened_app(client_max_size=self.config.max_body_bytes)
        app.router.add_get(self.config.path, self._verify)
        app.router.add_post(self.config.path, self._receive)
        try:
            self._runner, self.port = await serve(app, self.config.listen, self.config.port)
        except OSError as exc:
            where = f"{self.config.listen}:{self.config.port}"
            raise SourceError(
                f"{self.owner}: the Meta webhook cannot listen on {where} "
                f"({exc.strerror or exc}); give this source its own port"
            ) from None
        log.info(
            "%s: Meta webhook listening on http://%s:%s%s",
            self.owner,
            self.config.listen,
            self.port,
            self.config.path,
        )

    async def aclose(self) -> None:
        """Stop the server; events still queued are lost (Meta does not resend them), so their
        number is logged (polling finds the comments on recent posts again)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.queue:
            log.warning(
                "%s: stopped with %d webhook events not yet stored "
                "(polling finds the comments on recent posts again)",
                self.owner,
                len(self.queue),
            )

    async def _verify(self, request: web.Request) -> web.Response:
        mode = request.query.get("hub.mode", "")
        token = request.query.get("hub.verify_token", "")
        challenge = request.query.get("hub.challenge", "")
        if mode == "subscribe" and challenge and _same(token, self._verify_token):
            log.info("%s: Meta verified the webhook callback URL", self.owner)
            return web.Response(text=challenge, content_type="text/plain")
        log.warning("%s: refused a webhook verification (wrong verify token)", self.owner)
        return web.Response(status=403, text="verify token mismatch", content_type="text/plain")

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()  # size (413) and time (408): the app's middleware
        given = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            log.warning("%s: webhook POST without %s refused", self.owner, SIGNATURE_HEADER)
            return error_response(401, f"missing {SIGNATURE_HEADER}")
        if not signature_matches(given, self._app_secret, body):
            log.warning(
                "%s: webhook POST with a wrong signature refused (is %s the App Secret of the "
                "app that sends the events?)",
                self.owner,
                self.config.app_secret_env,
            )
            return error_response(403, f"bad {SIGNATURE_HEADER}")
        data, invalid = parse_json(body)
        if invalid is not None:
            return error_response(400, invalid)
        if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
            return error_response(400, "expected an object with an 'entry' list")
        return self._queue_changes(_changes(data, self.owner))

    def _queue_changes(self, changes: list[Change]) -> web.Response:
        fresh: dict[str, Change] = {}
        duplicates = ignored = 0
        for change in changes:
            try:
                key = self._accept(change)
            except (KeyError, TypeError, ValueError, AttributeError):
                key = None
                log.warning("%s: skipped a malformed %r webhook change", self.owner, change.field)
            if key is None:
                ignored += 1
            elif self.queue.seen(key) or key in fresh:
                duplicates += 1
            else:
                fresh[key] = change
        if len(fresh) > self.queue.room:
            log.warning(
                "%s: webhook queue full (%d waiting), refused %d events",
                self.owner,
                len(self.queue),
                len(fresh),
            )
            retry = str(max(1, round(self.config.drain_interval)))
            return error_response(503, "queue full, retry later", headers={"Retry-After": retry})
        for key, change in fresh.items():
            self.queue.put(key, change)
        counts = {"accepted": len(fresh), "duplicates": duplicates, "ignored": ignored}
        return web.json_response(counts)


def _changes(data: dict[str, Any], owner: str) -> list[Change]:
    """The well-formed changes of a delivery; malformed entries are skipped with a log line."""
    kind = data.get("object")
    out: list[Change] = []
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, (str, int)) or not isinstance(changes, list):
            if not (isinstance(entry, dict) and "messaging" in entry):  # DMs: not Parley's
                log.warning("%s: skipped a malformed webhook entry", owner)
            continue
        for change in changes:
            if (
                isinstance(change, dict)
                and isinstance(change.get("field"), str)
                and isinstance(change.get("value"), dict)
            ):
                out.append(Change(str(kind), str(entry_id), change["field"], change["value"]))
            else:
                log.warning("%s: skipped a malformed webhook change", owner)
    return out


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(given.encode(), expected.encode())
