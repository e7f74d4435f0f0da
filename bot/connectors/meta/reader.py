"""Reading the Graph API for the Facebook and Instagram sources: list edges paged against a
watermark (:class:`~bot.connectors.meta.graph.Watermark`), single objects, the usage brake, the
errors named after the permission a call needs, and a small cache of post texts for thread
context."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.connectors.base import Cursor
from bot.connectors.meta.graph import (
    GraphApiError,
    GraphClient,
    Watermark,
    graph_id,
    page_of,
    parse_time,
    source_error,
    text_of,
)
from bot.errors import SourceError

log = logging.getLogger(__name__)

CONTEXT_CACHE_SIZE = 256

Expand = Callable[[dict[str, Any]], list[dict[str, Any]]]
"""The items one list entry stands for (Instagram: a comment and its nested replies)."""


class _Gone(Exception):
    """An object disappeared between listing it and reading it."""


def _one(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry]


class GraphReader:
    """One Meta source's Graph reads (its ``platform`` and ``name`` label the log lines)."""

    def __init__(
        self,
        client: GraphClient,
        *,
        platform: str,
        name: str,
        token_env: str,
        usage_threshold: float,
    ) -> None:
        self.client = client
        self.platform = platform
        self.name = name
        self.token_env = token_env
        self.usage_threshold = usage_threshold
        self._texts: OrderedDict[str, str | None] = OrderedDict()  # post/media id → its text

    def usage_high(self) -> bool:
        """True (with a log line) when Meta's usage headers reached the threshold."""
        threshold = self.usage_threshold
        if not self.client.usage.at_least(threshold):
            return False
        log.warning(
            "%s source %r: Meta reports %.0f%% of the allowance used; "
            "stopping this poll early (threshold %.0f%%)",
            self.platform,
            self.name,
            self.client.usage.highest or 0.0,
            threshold,
        )
        return True

    async def page(
        self, path: str, params: dict[str, str], permission: str, *, gone_ok: bool = False
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a list edge (``data`` and the next ``after`` cursor); with ``gone_ok``
        an object deleted meanwhile raises _Gone."""
        try:
            return page_of(await self.client.get(path, params))
        except GraphApiError as exc:
            if gone_ok and exc.kind == "missing":
                log.info("%s source %r: %s is gone (%s)", self.platform, self.name, path, exc.label)
                raise _Gone from None
            raise self.error(exc, path, permission) from None

    async def read_route(
        self,
        key: str,
        path: str,
        params: dict[str, str],
        cursor: Cursor,
        new_cursor: Cursor,
        *,
        pages: int,
        permission: str,
        time_field: str,
        newest_first: bool,
        gone_ok: bool = False,
        expand: Expand = _one,
    ) -> list[dict[str, Any]]:
        """Items of a list edge newer than the watermark at ``cursor[key]`` (oldest first);
        ``new_cursor[key]`` gets the new watermark, or is dropped when, with ``gone_ok``, the
        edge's object was deleted. ``expand`` gives the items each entry stands for."""
        try:
            items, mark = await self._read_edge(
                path,
                params,
                mark=Watermark.parse(cursor.get(key)),
                pages=pages,
                permission=permission,
                time_field=time_field,
                newest_first=newest_first,
                gone_ok=gone_ok,
                expand=expand,
            )
        except _Gone:
            new_cursor.pop(key, None)
            return []
        new_cursor[key] = mark.dump()
        return items

    async def _read_edge(
        self,
        path: str,
        params: dict[str, str],
        *,
        mark: Watermark | None,
        pages: int,
        permission: str,
        time_field: str,
        newest_first: bool,
        gone_ok: bool,
        expand: Expand,
    ) -> tuple[list[dict[str, Any]], Watermark]:
        """Items of a list edge newer than ``mark`` (oldest first) and the new mark. A
        newest-first edge stops at the first item behind the mark; otherwise up to ``pages``
        pages are read and filtered. Malformed items are skipped with a log line; with
        ``gone_ok`` a deleted parent object raises _Gone."""
        taken: list[tuple[datetime, str, dict[str, Any]]] = []
        after: str | None = None
        reached = False
        for _ in range(pages):
            query = {**params, "after": after} if after else params
            entries, after = await self.page(path, query, permission, gone_ok=gone_ok)
            for entry in entries:
                for item in expand(entry):
                    parsed = self._stamp(item, path, time_field)
                    if parsed is None:
                        continue
                    created, item_id = parsed
                    if mark is not None and mark.is_old(created, item_id):
                        if newest_first and mark.at is not None and created < mark.at:
                            reached = True
                            break
                        continue
                    taken.append((created, item_id, item))
                if reached:
                    break
            if reached or after is None or self.usage_high():
                break
        else:
            if newest_first and mark is not None and after is not None:
                log.warning(
                    "%s source %r: more than %d pages of new items on %s since the last poll; "
                    "older ones were skipped (webhooks avoid this)",
                    self.platform,
                    self.name,
                    pages,
                    path,
                )
        new_mark = (mark or Watermark()).advance([(c, i) for c, i, _ in taken])
        taken.sort(key=lambda t: t[0])
        return [item for _, _, item in taken], new_mark

    def _stamp(
        self, item: dict[str, Any], path: str, time_field: str
    ) -> tuple[datetime, str] | None:
        try:
            item_id = graph_id(item["id"])
            created = parse_time(item[time_field])
            if created is None:
                raise ValueError(time_field)
        except (KeyError, ValueError) as exc:
            log.warning(
                "%s source %r: skipped a malformed item on %s (%s)",
                self.platform,
                self.name,
                path,
                exc,
            )
            return None
        return created, item_id

    async def lookup(self, path: str, fields: str, permission: str) -> dict[str, Any] | None:
        """One object (None, with a log line, when it was deleted)."""
        try:
            return await self.client.get(path, {"fields": fields})
        except GraphApiError as exc:
            if exc.kind == "missing":
                log.info(
                    "%s source %r: %s was deleted before Parley read it",
                    self.platform,
                    self.name,
                    path,
                )
                return None
            raise self.error(exc, path, permission) from None

    def error(self, exc: GraphApiError, path: str, permission: str) -> SourceError:
        """The SourceError for a failed call on ``path``."""
        return source_error(
            exc,
            f"{self.platform} source '{self.name}' ({path})",
            token_env=self.token_env,
            permission=permission,
            usage=self.client.usage,
            credential=self.client.credential(self.token_env),
        )

    async def object_text(self, object_id: str, field: str, permission: str) -> str | None:
        """The text (``field``) of a post, media object or comment, for thread context: read
        once, then cached; None when it has none or cannot be read."""
        if object_id in self._texts:
            self._texts.move_to_end(object_id)
            return self._texts[object_id]
        found = await self.lookup(f"/{object_id}", f"id,{field}", permission)
        text = (text_of(found.get(field)) or None) if found else None
        self.remember_text(object_id, text)
        return text

    def remember_text(self, object_id: str, text: str | None) -> None:
        """Keep a post's or media object's text for thread context."""
        self._texts[object_id] = text
        self._texts.move_to_end(object_id)
        if len(self._texts) > CONTEXT_CACHE_SIZE:
            self._texts.popitem(last=False)
