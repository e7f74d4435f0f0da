"""Reading Mastodon statuses for :class:`~bot.connectors.mastodon.connector.MastodonSource`:
one route's pages forward from its cursor (``min_id``), a status turned into a mention, and the
parent post's text as thread context (cached, within a per-poll budget)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import httpx
from pydantic import ValidationError

from bot.connectors.clean import clean_text
from bot.connectors.http.outbound_limits import failure
from bot.connectors.mastodon.api import (
    MastodonClient,
    MastodonSourceConfig,
    raw_mention,
    source_message,
    token_rejected,
)
from bot.domain.models import RawMention
from bot.errors import SourceError, SourceRateLimited

log = logging.getLogger(__name__)

CONTEXT_CACHE_SIZE = 512


class StatusReader:
    """The source's GET calls: route pages, mentions and their parent posts' text."""

    def __init__(self, config: MastodonSourceConfig, client: MastodonClient) -> None:
        self.config = config
        self.client = client
        self.name = config.name
        self._parents: OrderedDict[str, str | None] = OrderedDict()

    async def read_route(
        self, path: str, fixed: list[tuple[str, str]], since: str | None, extract: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Statuses newer than ``since`` (oldest first) and the newest page id to resume from."""
        limit = min(self.config.page_size, 40) if extract == "search" else self.config.page_size
        collected: list[dict[str, Any]] = []
        newest = since
        pages = 1 if since is None else self.config.max_pages
        for _ in range(pages):
            params = [*fixed, ("limit", str(limit))]
            if newest is not None:
                # min_id pages forward from the cursor (since_id would jump to the newest page
                # and leave a gap after a busy spell).
                params.append(("min_id", newest))
            entries = await self._get_list(path, params, extract)
            if newest is not None:  # a server that ignores min_id (search often does)
                entries = [e for e in entries if _id_order(_entry_id(e)) > _id_order(newest)]
            ids = [e["id"] for e in entries if isinstance(e.get("id"), str)]
            if not ids:
                break
            newest = max(ids, key=_id_order)
            for entry in sorted(entries, key=lambda e: _id_order(_entry_id(e))):
                status = entry.get("status") if extract == "notifications" else entry
                if isinstance(status, dict):
                    collected.append(status)
                else:
                    log.warning(
                        "mastodon source %r: skipped an entry without a status (id %s)",
                        self.name,
                        _entry_id(entry)[:40],
                    )
            if len(entries) < limit:
                break
        return collected, newest

    async def _get_list(
        self, path: str, params: list[tuple[str, str]], extract: str
    ) -> list[dict[str, Any]]:
        response = await self._call(path, params)
        try:
            body = response.json()
        except ValueError:
            raise self._error(f"{path}: answer is not JSON") from None
        if extract == "search":
            body = body.get("statuses") if isinstance(body, dict) else None
        if not isinstance(body, list):
            raise self._error(f"{path}: unexpected answer (not a list)")
        return [e if isinstance(e, dict) else {} for e in body]

    async def _call(self, path: str, params: list[tuple[str, str]]) -> httpx.Response:
        try:
            response = await self.client.request("GET", path, params=params)
        except httpx.TimeoutException:
            raise self._error(f"{path}: timed out after {self.config.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"{path}: {failure(exc)}") from None
        status = response.status_code
        if status == 429:
            retry_after = self.client.budget.retry_after(response)
            hint = f", retry after {retry_after:.0f}s" if retry_after is not None else ""
            raise SourceRateLimited(
                str(self._error(f"{path}: HTTP 429 Too Many Requests{hint}")),
                retry_after=retry_after,
            )
        if status == 401:
            raise token_rejected(self.config)
        if status == 403 and path == "/api/v2/search":
            raise self._error(
                f"{path}: HTTP 403: search needs the read:search scope; tick it for Parley's "
                "application under Preferences → Development on the instance"
            )
        if status == 403:
            raise self._error(f"{path}: HTTP 403 (does the token have the read scopes?)")
        if status != 200:
            raise self._error(f"{path}: HTTP {status} {response.reason_phrase}".rstrip())
        return response

    def _error(self, what: str) -> SourceError:
        return SourceError(source_message(self.config, what))

    async def own_id(self) -> str | None:
        """The account's own id, to leave its own posts out of hashtag and search results."""
        try:
            return await self.client.own_account_id()
        except httpx.HTTPError:
            return None

    async def mention(
        self, status: dict[str, Any], own_id: str | None, context_budget: list[int]
    ) -> RawMention | None:
        """The mention a status stands for (with context); None for a boost, the account's own
        post or a malformed status."""
        try:
            if status.get("reblog") or (own_id and status["account"]["id"] == own_id):
                return None
            mention = raw_mention(self.name, status)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            log.warning(
                "mastodon source %r: skipped malformed status %s (%s)",
                self.name,
                str(status.get("id"))[:40],
                type(exc).__name__,
            )
            return None
        return await self.with_context(mention, context_budget)

    async def with_context(self, mention: RawMention, context_budget: list[int]) -> RawMention:
        """The mention with its parent post's text as thread context, when there is one."""
        if mention.parent_ref and self.config.thread_context:
            context = await self._parent_text(mention.parent_ref, context_budget)
            if context:
                return mention.model_copy(update={"thread_context": context})
        return mention

    async def _parent_text(self, parent_id: str, budget: list[int]) -> str | None:
        """The parent post's text, cached; best effort within the per-poll budget."""
        if parent_id in self._parents:
            self._parents.move_to_end(parent_id)
            return self._parents[parent_id]
        if budget[0] <= 0 or self.client.budget.below(self.config.rate_limit_reserve):
            return None
        budget[0] -= 1
        text: str | None = None
        try:
            response = await self.client.request("GET", f"/api/v1/statuses/{parent_id}")
            if response.status_code == 200:
                parent = response.json()
                text = clean_text(str(parent.get("content") or ""), html=True, limit=2000) or None
            elif response.status_code not in (404, 410):
                return None  # transient: try again next time rather than caching a miss
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        self._parents[parent_id] = text
        if len(self._parents) > CONTEXT_CACHE_SIZE:
            self._parents.popitem(last=False)
        return text


def _entry_id(entry: dict[str, Any]) -> str:
    value = entry.get("id")
    return value if isinstance(value, str) else ""


def _id_order(value: str) -> tuple[int, str]:
    """Mastodon ids are numeric strings: longer means newer, then lexical order."""
    return (len(value), value)
