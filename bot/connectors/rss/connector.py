"""RSS/Atom feeds as a mention source: Google Alerts (Atom), Talkwalker Alerts (RSS 2.0), blogs.

A feed comes over HTTP(S) with a conditional GET (ETag / Last-Modified in the cursor) or from a
local file (its mtime and size in the cursor). The bytes are parsed by feedparser, which never
touches the network itself here, in a worker thread so a large feed does not stall the bot.

Feed URLs of alert services carry a secret token in their path, so error messages and logs name
a feed by scheme and host only.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import feedparser
import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.connectors.base import ConfiguredSource, Cursor, FetchResult, SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import USER_AGENT
from bot.connectors.http.outbound_limits import (
    ALLOW_PRIVATE_HELP,
    MAX_BODY_BYTES,
    FetchRefused,
    guarded_client,
)
from bot.domain.models import MAX_TEXT_CHARS, Author, RawMention
from bot.errors import SourceError, SourceRateLimited
from bot.retry_after import parse_retry_after

log = logging.getLogger(__name__)

MAX_FEED_BYTES = MAX_BODY_BYTES
"""A feed larger than this once decompressed is refused. Alert feeds are tens of KB; the margin
lets one huge item through (it is then cut by clean_text) while bounding what a broken server
can make us hold."""
MAX_TITLE_CHARS = 1000
MAX_ID_CHARS = 512
MAX_URL_CHARS = 4096

_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REDDIT_AUTHOR = re.compile(r"/?u/([A-Za-z0-9_-]{1,40})")
_FEDIVERSE_POST = re.compile(r"https?://([a-z0-9.-]+)/@([A-Za-z0-9_]{1,64})/\d+", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


class RssSourceConfig(BaseModel):
    """An RSS/Atom feed (Google Alerts, Talkwalker Alerts, any blog) over HTTP(S) or from a file."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["rss"]
    name: SourceName
    url: str | None = None
    path: str | None = None
    interval: float = Field(default=300.0, ge=5.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    platform: str = Field(default="rss", description="shown as the mention's platform")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)

    @model_validator(mode="after")
    def _one_location(self) -> RssSourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' or 'path'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        return self


class RssSource(ConfiguredSource[RssSourceConfig]):
    """Polls one RSS or Atom feed (see the module docstring)."""

    def __init__(self, config: RssSourceConfig, *, client: httpx.AsyncClient | None = None):
        super().__init__(config)
        self._owns_client = client is None and config.url is not None
        self._client = client
        if self._owns_client:
            self._client = guarded_client(
                timeout=config.timeout,
                allow_private=config.allow_private,
                what="feed",
                max_bytes=MAX_FEED_BYTES,
                follow_redirects=True,
                headers={"User-Agent": USER_AGENT},
            )
        if config.url is not None:
            parts = urlsplit(config.url)
            self._label = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        else:
            self._label = str(config.path)

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """New feed items since ``cursor`` (all items in the feed; the store skips known ids)."""
        if self.config.path is not None:
            return await self._fetch_file(Path(self.config.path), cursor)
        return await self._fetch_http(cursor)

    def _error(self, what: str) -> SourceError:
        return SourceError(f"rss source '{self.name}' ({self._label}): {what}")

    async def _fetch_file(self, path: Path, cursor: Cursor) -> FetchResult:
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            raise self._error(f"file not found: {path}") from None
        except OSError as exc:
            raise self._error(f"cannot read {path} ({exc.strerror})") from None
        new_cursor = {"mtime_ns": str(stat.st_mtime_ns), "size": str(stat.st_size)}
        if new_cursor == {k: cursor.get(k) for k in new_cursor}:
            return FetchResult(items=[], cursor=dict(cursor))
        if stat.st_size > MAX_FEED_BYTES:
            raise self._error(f"file is larger than {MAX_FEED_BYTES // (1024 * 1024)} MB")
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise self._error(f"cannot read {path} ({exc.strerror})") from None
        items = await asyncio.to_thread(self._parse, data, {})
        return FetchResult(items=items, cursor=new_cursor)

    async def _fetch_http(self, cursor: Cursor) -> FetchResult:
        assert self._client is not None and self.config.url is not None
        headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT}
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
        timeout = self.config.timeout
        try:
            # httpx's timeout is per read; the outer one bounds a server that trickles bytes.
            async with asyncio.timeout(timeout):
                response_headers, data = await self._get(self.config.url, headers)
        except (TimeoutError, httpx.TimeoutException):
            raise self._error(f"timed out after {timeout:g}s") from None
        except FetchRefused as exc:
            raise self._error(str(exc)) from None
        except httpx.HTTPError as exc:
            raise self._error(f"request failed ({type(exc).__name__}{self._detail(exc)})") from None
        if data is None:  # 304 Not Modified
            return FetchResult(items=[], cursor=dict(cursor))
        new_cursor: Cursor = {}
        if response_headers.get("etag"):
            new_cursor["etag"] = response_headers["etag"]
        if response_headers.get("last-modified"):
            new_cursor["last_modified"] = response_headers["last-modified"]
        items = await asyncio.to_thread(self._parse, data, response_headers)
        return FetchResult(items=items, cursor=new_cursor)

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes | None]:
        """Response headers and body (``None`` for 304); raises SourceError for bad answers."""
        assert self._client is not None
        timeout = self.config.timeout
        async with self._client.stream("GET", url, headers=headers, timeout=timeout) as response:
            status = response.status_code
            if status == 304:
                return dict(response.headers), None
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
                raise SourceRateLimited(
                    str(self._error(f"HTTP 429 Too Many Requests{hint}")), retry_after=retry_after
                )
            if status >= 400 or status < 200:
                raise self._error(f"HTTP {status} {response.reason_phrase}".rstrip())
            # The client caps the body once decompressed (bot.connectors.http.outbound_limits).
            return dict(response.headers), await response.aread()

    def _detail(self, exc: Exception) -> str:
        """An exception's text with any URL reduced to its origin (feed paths hold secrets)."""
        text = str(exc).strip()
        if not text:
            return ""
        text = _URL_IN_TEXT.sub(lambda m: _origin(m.group()), text)
        return f": {text[:200]}"

    def _parse(self, data: bytes, headers: Mapping[str, str]) -> list[RawMention]:
        """Feed bytes to mentions (runs in a worker thread)."""
        # A BytesIO, never bytes or str: feedparser treats a string as a path or URL to open.
        # Its HTML sanitizer is off: clean_text keeps only the text, and the sanitizer takes
        # seconds per megabyte of markup, which a hostile feed could exploit.
        parsed: Any = feedparser.parse(
            io.BytesIO(data),
            response_headers={k: v for k, v in headers.items() if k.startswith("content-")},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
        entries = parsed.get("entries") or []
        if not entries and not parsed.get("version"):
            # No entries and no recognisable feed (an HTML login page, an empty body…).
            raise self._error(f"not a valid RSS/Atom feed ({_bozo_reason(parsed)})")
        if parsed.get("bozo"):
            reason = _bozo_reason(parsed)
            log.warning(
                "rss source %r (%s): feed is malformed (%s); using the %d entries read",
                self.name,
                self._label,
                reason,
                len(entries),
            )
        feed_language = _language(parsed.get("feed", {}).get("language"))
        return [self._mention(entry, feed_language) for entry in entries]

    def _mention(self, entry: Any, feed_language: str | None) -> RawMention:
        title_detail = entry.get("title_detail") or {}
        title = _clean(entry.get("title"), title_detail.get("type"), MAX_TITLE_CHARS)
        body_detail = _body(entry)
        text = _clean(body_detail.get("value"), body_detail.get("type")) if body_detail else ""
        link = _link(entry.get("link"))
        return RawMention(
            source=self.name,
            platform=self.config.platform,
            external_id=_external_id(entry, title, text),
            url=link,
            author=_author(entry.get("author_detail") or {}, link),
            title=title or None,
            text=text or title,
            language=_language(
                body_detail.get("language") if body_detail else None,
                title_detail.get("language"),
                entry.get("language"),
            )
            or feed_language,
            # dict.get: feedparser's own get() maps a missing "updated" to "published", warning.
            created_at=_timestamp(
                dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
            ),
        )


def _author(detail: Mapping[str, Any], link: str | None) -> Author:
    """The author from the entry, with a handle where the feed's conventions give one:
    Reddit names authors ``/u/name``; Mastodon posts live at ``https://host/@name/id``."""
    name = clean_text(detail.get("name") or "", limit=200)
    profile = _link(detail.get("href"))
    reddit = _REDDIT_AUTHOR.fullmatch(name)
    if reddit:
        return Author(handle=reddit.group(1), display_name=None, profile_url=profile)
    fediverse = _FEDIVERSE_POST.match(link or "")
    if fediverse:
        host, user = fediverse.group(1), fediverse.group(2)
        return Author(
            handle=f"{user}@{host}",
            display_name=name or None,
            profile_url=profile or f"https://{host}/@{user}",
        )
    return Author(handle="", display_name=name or None, profile_url=profile)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _body(entry: Any) -> dict[str, Any] | None:
    """The entry's content (Atom content, RSS content:encoded), else its summary/description."""
    for detail in entry.get("content") or []:
        if detail.get("value"):
            return dict(detail)
    summary = entry.get("summary_detail")
    if summary and summary.get("value"):
        return dict(summary)
    return None


def _clean(value: Any, content_type: Any, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or not value:
        return ""
    return clean_text(value, html=content_type in _HTML_TYPES, limit=limit)


def _external_id(entry: Any, title: str, text: str) -> str:
    for candidate in (entry.get("id"), entry.get("link")):
        if isinstance(candidate, str) and candidate.strip():
            candidate = clean_text(candidate, limit=10 * MAX_ID_CHARS)
            if len(candidate) <= MAX_ID_CHARS:
                return candidate
            return "sha256:" + hashlib.sha256(candidate.encode()).hexdigest()
    return "sha256:" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def _link(value: Any) -> str | None:
    """An http(s) link as given (no control characters, bounded length), else None."""
    if not isinstance(value, str):
        return None
    link = value.strip()
    if len(link) > MAX_URL_CHARS or not link.lower().startswith(("http://", "https://")):
        return None
    return None if _CONTROL.search(link) else link


def _language(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str):
            tag = value.strip().lower().replace("_", "-")
            if _LANGUAGE.fullmatch(tag):
                return tag
    return None


def _timestamp(value: Any) -> datetime | None:
    """feedparser's UTC struct_time to an aware datetime (None if absent or out of range)."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _bozo_reason(parsed: Any) -> str:
    """feedparser's complaint about a document, on one short line."""
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "no RSS or Atom root element"
    text = " ".join(str(exc).split()).removeprefix("<unknown>:")
    return text[:200] or type(exc).__name__
