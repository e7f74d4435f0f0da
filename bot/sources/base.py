"""The small interface every mention source implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.domain.models import RawMention

Cursor = dict[str, str]
"""A source's persisted position (ETag, since_id, watermark…), stored as JSON between polls."""


@dataclass
class FetchResult:
    """What one poll returned: new items and the cursor to persist once they are stored."""

    items: list[RawMention]
    cursor: Cursor = field(default_factory=dict)


class Source(Protocol):
    """A place Parley polls for mentions. ``fetch`` raises SourceError on failure."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    async def fetch(self, cursor: Cursor) -> FetchResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Budgeted(Protocol):
    """A source that knows how many calls its platform still allows (shown in health)."""

    @property
    def rate_limit_remaining(self) -> int | None: ...
