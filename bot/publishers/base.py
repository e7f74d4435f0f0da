"""The small interface every publisher implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.domain.models import Mention, Reply


@dataclass(frozen=True)
class PublishResult:
    """Outcome of a post. ``manual`` means a person must post it and confirm."""

    posted_id: str | None = None
    url: str | None = None
    manual: bool = False
    cost_usd: float | None = None
    """What the platform charges for this post (X pay-per-use), when it charges."""


class Publisher(Protocol):
    """Posts a reply. Raises PublishError; ``permanent=True`` ends the reply as dead."""

    @property
    def name(self) -> str: ...

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult: ...

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """After a crash mid-send: the earlier post if it went through, else None."""
        ...
