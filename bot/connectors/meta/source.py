"""What the Facebook Page and Instagram sources share: their settings, one Graph client, an
optional Meta webhook, and a ``fetch`` that first reads the events pushed since the last fetch,
then polls when a poll is due.

Without a webhook every fetch polls (every ``interval`` seconds). With one, fetches run every
``webhook.drain_interval`` seconds and poll only every ``webhook.poll_interval`` seconds, as a
fallback for events Meta failed to deliver. Webhook events leave their queue only once the
pipeline has stored what they named (the cursor's ``run``/``acked`` keys); a poll's positions
sit beside them in the same cursor. Items come out oldest first, each once per fetch.
The Graph reads themselves (edges, objects, usage) are in :mod:`bot.connectors.meta.reader`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

import httpx
from pydantic import Field

from bot.connectors.base import ClientSource, Cursor, FetchResult, SourceName
from bot.connectors.meta.graph import (
    GraphApiError,
    GraphClient,
    GraphSettings,
    source_error,
)
from bot.connectors.meta.reader import GraphReader
from bot.connectors.meta.webhook import APP_SECRET_ENV, Change, MetaWebhook, MetaWebhookConfig
from bot.connectors.spec import Secret, SecretValues
from bot.domain.models import RawMention

log = logging.getLogger(__name__)

MAX_WEBHOOK_ITEMS = 200
"""Webhook events read per fetch (each costs one or two Graph calls)."""

Add = Callable[[RawMention | None], None]


class MetaSourceConfig(GraphSettings):
    """Settings of a Facebook Page or Instagram source (``name``, token, webhook)."""

    name: SourceName
    token_env: str = Field(min_length=1, description="environment variable holding the token")
    webhook: MetaWebhookConfig | None = Field(
        default=None, description="receive Meta webhooks on this endpoint (polling as fallback)"
    )


ConfigT = TypeVar("ConfigT", bound=MetaSourceConfig)


def webhook_secrets(config: MetaSourceConfig) -> tuple[Secret, ...]:
    """The webhook's verify token and the App Secret: both required with a webhook; without
    one, the App Secret is optional (it signs calls with ``appsecret_proof``)."""
    if config.webhook is None:
        return (Secret(APP_SECRET_ENV, "the Meta app's App Secret", required=False),)
    return (
        Secret(config.webhook.verify_token_env, "the webhook verify token"),
        Secret(config.webhook.app_secret_env, "the Meta app's App Secret"),
    )


def webhook_values(config: MetaSourceConfig, secrets: SecretValues) -> tuple[str, str]:
    """The verify token (``""`` without a webhook) and the App Secret, from the values of
    :func:`webhook_secrets`."""
    if config.webhook is None:
        return "", secrets[APP_SECRET_ENV]
    return secrets[config.webhook.verify_token_env], secrets[config.webhook.app_secret_env]


class MetaSource(ClientSource[ConfigT, GraphClient]):
    """The common part of the Facebook and Instagram sources (see the module docstring)."""

    platform: ClassVar[str]

    def __init__(
        self, config: ConfigT, client: GraphClient, *, verify_token: str = "", app_secret: str = ""
    ) -> None:
        super().__init__(config, client)
        self.webhook = (
            None
            if config.webhook is None
            else MetaWebhook(
                config.webhook,
                owner=f"{self.platform} source '{config.name}'",
                verify_token=verify_token,
                app_secret=app_secret,
                accept=self.accept,
            )
        )
        self._next_poll = 0.0  # time.monotonic() of the next poll (webhooks on)
        self.graph = GraphReader(
            client,
            platform=self.platform,
            name=config.name,
            token_env=config.token_env,
            usage_threshold=config.usage_threshold,
        )

    @classmethod
    def create(
        cls,
        config: ConfigT,
        token: str,
        *,
        verify_token: str = "",
        app_secret: str = "",
        http: httpx.AsyncClient | None = None,
    ) -> Self:
        """A source with its own client (and webhook endpoint, when configured)."""
        client = GraphClient(
            config.base_url,
            config.api_version,
            token,
            timeout=config.timeout,
            client=http,
            app_secret=app_secret,
            allow_private=config.allow_private,
        )
        return cls(config, client, verify_token=verify_token, app_secret=app_secret)

    @property
    def interval(self) -> float:
        """Seconds between fetches: the webhook drain period, else the poll interval."""
        return self.webhook.config.drain_interval if self.webhook else self.config.interval

    @property
    def rate_limit_remaining(self) -> int | None:
        """Percent of Meta's allowance left (health display)."""
        return self.client.usage.remaining

    async def aclose(self) -> None:
        """Stop the webhook endpoint and close the HTTP client if it was created here."""
        if self.webhook is not None:
            await self.webhook.aclose()
        await super().aclose()

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """Pushed events first, then (when due) a poll of every route."""
        new_cursor = dict(cursor)
        items: list[RawMention] = []
        seen: set[str] = set()

        def add(mention: RawMention | None) -> None:
            if mention is not None and mention.external_id not in seen:
                seen.add(mention.external_id)
                items.append(mention)

        complete = True
        if self.webhook is not None:
            await self.webhook.start()
            complete = await self._drain(cursor, new_cursor, add)
        if complete and time.monotonic() >= self._next_poll:
            await self.poll(cursor, new_cursor, add)
            if self.webhook is not None:
                self._next_poll = time.monotonic() + self.webhook.config.poll_interval
        items.sort(key=lambda m: m.created_at or datetime.min.replace(tzinfo=UTC))
        return FetchResult(items=items, cursor=new_cursor)

    def accept(self, change: Change) -> str | None:
        """The key of a webhook change this source wants, else None."""
        raise NotImplementedError

    async def resolve(self, change: Change) -> RawMention | None:
        """The mention an accepted webhook change names, read through the API."""
        raise NotImplementedError

    async def poll(self, cursor: Cursor, new_cursor: Cursor, add: Add) -> None:
        """Read every polled route, updating ``new_cursor`` and calling ``add`` per item."""
        raise NotImplementedError

    async def _drain(self, cursor: Cursor, new_cursor: Cursor, add: Add) -> bool:
        """Read the queued webhook events; False if usage stopped it before the end."""
        assert self.webhook is not None
        queue = self.webhook.queue
        queue.acknowledge(cursor)
        last: int | None = None
        complete = True
        for seq, change in queue.batch(MAX_WEBHOOK_ITEMS):
            if self.graph.usage_high():
                complete = False
                break
            try:
                add(await self.resolve(change))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "%s source %r: skipped a malformed %r webhook event (%s)",
                    self.platform,
                    self.name,
                    change.field,
                    type(exc).__name__,
                )
            last = seq
        new_cursor.update(queue.cursor(last))
        return complete

    def skipped(self, item: dict[str, Any], exc: Exception) -> None:
        """Log a malformed item."""
        log.warning(
            "%s source %r: skipped a malformed item %s (%s: %s)",
            self.platform,
            self.name,
            str(item.get("id"))[:40],
            type(exc).__name__,
            exc,
        )


def forget_unwatched(new_cursor: Cursor, prefix: str, watched: Iterable[str]) -> None:
    """Drop the cursor entries ``<prefix><id>`` of objects no longer watched (out of the
    window of newest posts; webhooks still cover them)."""
    kept = {f"{prefix}{object_id}" for object_id in watched}
    for key in [k for k in new_cursor if k.startswith(prefix) and k not in kept]:
        del new_cursor[key]


async def signed_in_as(source: MetaSource[Any]) -> str:
    """The Page or account the token belongs to (Graph ``/me``)."""
    try:
        me = await source.client.get("/me", {"fields": "id,name"})
    except GraphApiError as exc:
        if exc.status == 0:
            raise httpx.TransportError(exc.message) from None
        where = f"{source.platform} source '{source.name}'"
        raise source_error(
            exc,
            where,
            token_env=source.config.token_env,
            permission="the needed",
            usage=source.client.usage,
        ) from None
    return f"signed in as {me.get('name') or me.get('id', '?')}"
