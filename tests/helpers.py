"""Small builders shared by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.models import Author, RawMention, utcnow
from bot.sources.base import Cursor, FetchResult


def raw(
    external_id: str,
    text: str,
    *,
    source: str = "feed",
    platform: str = "rss",
    url: str | None = None,
    created_at: datetime | None = None,
    language: str | None = "en",
    handle: str = "someone",
    reach: int | None = 120,
) -> RawMention:
    """A raw item as a source would yield it."""
    return RawMention(
        source=source,
        platform=platform,
        external_id=external_id,
        url=url or f"https://example.com/posts/{external_id}",
        author=Author(handle=handle, display_name=handle.title(), reach=reach),
        text=text,
        language=language,
        created_at=created_at or utcnow() - timedelta(minutes=5),
    )


@dataclass
class ScriptedSource:
    """A source that replays scripted results (a list of FetchResult or exceptions)."""

    name: str
    script: list[FetchResult | Exception]
    interval: float = 0.01
    cursors: list[Cursor] = field(default_factory=list)

    async def fetch(self, cursor: Cursor) -> FetchResult:
        self.cursors.append(dict(cursor))
        step = self.script.pop(0) if self.script else FetchResult([], cursor)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        return None
