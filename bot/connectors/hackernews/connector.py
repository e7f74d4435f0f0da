"""Hacker News as a mention source, through the Algolia HN Search API (``search_by_date``).

Each configured query keeps its own ``created_at_i`` watermark in the cursor. A poll asks for
hits at or after the watermark, newest first, page by page, and skips the objectIDs already seen
at the watermark second (several items can share one second). Hacker News has no posting API:
replies go through the manual publisher (ready-to-copy text and the item's link).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from bot.connectors.base import ConfiguredSource, Cursor, FetchResult, SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import USER_AGENT
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP, failure, guarded_client
from bot.domain.models import Author, RawMention
from bot.errors import SourceError, SourceRateLimited
from bot.retry_after import parse_retry_after

log = logging.getLogger(__name__)

PLATFORM = "hackernews"
HITS_PER_PAGE = 100
ITEM_URL = "https://news.ycombinator.com/item?id={}"
USER_URL = "https://news.ycombinator.com/user?id={}"
MAX_TITLE_CHARS = 1000


class HackerNewsSourceConfig(BaseModel):
    """Stories and comments on Hacker News matching one or more search queries."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["hackernews"]
    name: SourceName
    queries: list[str] = Field(
        min_length=1, max_length=20, description="Algolia search queries, e.g. 'nimbus notes'"
    )
    kinds: list[Literal["story", "comment"]] = Field(
        default=["story", "comment"], min_length=1, description="which HN items to search"
    )
    interval: float = Field(default=300.0, ge=30.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    max_pages: int = Field(
        default=10, ge=1, le=10, description="pages of 100 hits per query and poll (Algolia: 10)"
    )
    base_url: str = Field(default="https://hn.algolia.com", pattern=r"^https?://[^/?#]+/?$")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)


class HackerNewsSource(ConfiguredSource[HackerNewsSourceConfig]):
    """Polls Algolia's HN search for each query (see the module docstring)."""

    def __init__(
        self, config: HackerNewsSourceConfig, *, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(config)
        self._owns_client = client is None
        self._client = client or guarded_client(
            timeout=config.timeout,
            allow_private=config.allow_private,
            headers={"User-Agent": USER_AGENT},
        )
        self._endpoint = config.base_url.rstrip("/") + "/api/v1/search_by_date"

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """New hits for every query since its watermark; the cursor holds one entry per query."""
        items: dict[str, RawMention] = {}
        new_cursor: Cursor = {}
        for query in dict.fromkeys(self.config.queries):
            found, new_cursor[query] = await self._fetch_query(query, cursor.get(query))
            for mention in found:
                items.setdefault(mention.external_id, mention)
        return FetchResult(items=list(items.values()), cursor=new_cursor)

    async def _fetch_query(self, query: str, state: str | None) -> tuple[list[RawMention], str]:
        watermark, seen = _read_state(state)
        first_poll = watermark is None
        params: dict[str, str | int] = {
            "query": query,
            "tags": "(" + ",".join(self.config.kinds) + ")",
            "hitsPerPage": HITS_PER_PAGE,
        }
        if watermark is not None:
            # ">=", not ">": items created in the watermark second after the last poll count.
            params["numericFilters"] = f"created_at_i>={watermark}"
        # The first poll takes only the newest page: the core stores older items quietly
        # anyway (look-back rule), so more pages would only cost requests.
        pages = 1 if first_poll else self.config.max_pages
        mentions: list[RawMention] = []
        top = watermark or 0
        at_top: set[str] = set(seen)
        for page in range(pages):
            body = await self._get({**params, "page": page})
            hits = body.get("hits")
            if not isinstance(hits, list):
                raise self._error(f"query {query!r}: answer has no 'hits' list")
            for hit in hits:
                mention = self._mention(hit, query)
                if mention is None:
                    continue
                stamp = hit["created_at_i"]
                if stamp == watermark and mention.external_id in seen:
                    continue
                mentions.append(mention)
                if stamp > top:
                    top, at_top = stamp, set()
                if stamp == top:
                    at_top.add(mention.external_id)
            nb_pages = body.get("nbPages")
            if not hits or not isinstance(nb_pages, int) or page + 1 >= nb_pages:
                break
        else:
            if not first_poll:
                log.warning(
                    "hackernews source %r: query %r has more than %d new hits; older ones skipped",
                    self.name,
                    query,
                    pages * HITS_PER_PAGE,
                )
        if not mentions and watermark is None:
            return [], ""
        return mentions, f"{top}:{','.join(sorted(at_top))}"

    async def _get(self, params: Mapping[str, str | int]) -> dict[str, Any]:
        timeout = self.config.timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.get(self._endpoint, params=params, timeout=timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise self._error(f"timed out after {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._error(failure(exc)) from None
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
            raise SourceRateLimited(
                str(self._error(f"HTTP 429 Too Many Requests{hint}")), retry_after=retry_after
            )
        if status != 200:
            raise self._error(f"HTTP {status} {response.reason_phrase}".rstrip())
        try:
            body = response.json()
        except ValueError:
            raise self._error("answer is not valid JSON") from None
        if not isinstance(body, dict):
            raise self._error("answer is not a JSON object")
        return body

    def _error(self, what: str) -> SourceError:
        return SourceError(f"hackernews source '{self.name}': {what}")

    def _mention(self, hit: Any, query: str) -> RawMention | None:
        """A hit as a mention; a malformed hit is logged and skipped (None)."""
        problem = _malformed(hit)
        if problem is not None:
            log.warning(
                "hackernews source %r: query %r: skipping a malformed hit (%s)",
                self.name,
                query,
                problem,
            )
            return None
        object_id = str(hit["objectID"])
        author = hit.get("author") if isinstance(hit.get("author"), str) else ""
        tags = hit.get("_tags") or []
        is_comment = "comment" in tags or isinstance(hit.get("comment_text"), str)
        title = _text(hit.get("title"), html=False, limit=MAX_TITLE_CHARS)
        if is_comment:
            text = _text(hit.get("comment_text"), html=True)
            context = _text(hit.get("story_title"), html=False, limit=MAX_TITLE_CHARS)
            parent = hit.get("parent_id")
        else:
            text = _text(hit.get("story_text"), html=True) or title
            context, parent = "", None
        if not text:
            log.warning(
                "hackernews source %r: query %r: skipping hit %s with no text",
                self.name,
                query,
                object_id,
            )
            return None
        return RawMention(
            source=self.name,
            platform=PLATFORM,
            external_id=object_id,
            url=ITEM_URL.format(object_id),
            author=Author(
                handle=author,
                display_name=None,
                profile_url=USER_URL.format(author) if author else None,
            ),
            title=None if is_comment else title or None,
            text=text,
            created_at=datetime.fromtimestamp(hit["created_at_i"], UTC),
            parent_ref=str(parent) if isinstance(parent, int | str) and parent else None,
            thread_context=context or None,
        )


def _malformed(hit: Any) -> str | None:
    """Why a hit cannot be used, or None."""
    if not isinstance(hit, dict):
        return "not an object"
    object_id = hit.get("objectID")
    if not isinstance(object_id, str | int) or not str(object_id).isdigit():
        return f"bad objectID {str(object_id)[:40]!r}"
    stamp = hit.get("created_at_i")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or not 0 < stamp < 2**33:
        return f"objectID {object_id}: bad created_at_i {str(stamp)[:40]!r}"
    return None


def _text(value: Any, *, html: bool, limit: int | None = None) -> str:
    if not isinstance(value, str) or not value:
        return ""
    if limit is None:
        return clean_text(value, html=html)
    return clean_text(value, html=html, limit=limit)


def _read_state(state: str | None) -> tuple[int | None, frozenset[str]]:
    """A query's cursor entry ``"<created_at_i>:<id>,<id>"`` (None: never polled)."""
    if not state:
        return None, frozenset()
    stamp, _, ids = state.partition(":")
    if not stamp.isdigit():
        return None, frozenset()
    return int(stamp), frozenset(i for i in ids.split(",") if i)
