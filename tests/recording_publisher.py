"""A publisher for outbox tests that records what it posted in a JSON file, like a platform
would, and can be told to fail, hang or to find its own earlier posts when reconciling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.connectors.base import PublishResult
from bot.domain.models import Mention, Reply
from bot.errors import PublishError


class RecordingPublisher:
    """Posts into ``ledger`` (a JSON list kept on disk, so it survives a simulated crash)."""

    name = "recording"

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.failures: list[PublishError] = []
        self.hang_after_post = False
        self.hanging = asyncio.Event()
        """Set once a post was made and the publisher hangs (``hang_after_post``)."""
        self.cost_usd: float | None = None
        """What each post "costs" on this platform (None: free)."""

    def posts(self) -> list[dict[str, str]]:
        """Everything ever posted."""
        if not self.ledger.exists():
            return []
        posts: list[dict[str, str]] = json.loads(self.ledger.read_text())
        return posts

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        if self.failures:
            raise self.failures.pop(0)
        posts = self.posts()
        posts.append({"key": reply.idempotency_key, "text": reply.text})
        self.ledger.write_text(json.dumps(posts))
        if self.hang_after_post:
            self.hanging.set()
            await asyncio.Event().wait()  # the process "dies" here, before recording success
        return PublishResult(
            posted_id=str(len(posts)),
            url=f"https://example.com/r/{len(posts)}",
            cost_usd=self.cost_usd,
        )

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        for index, post in enumerate(self.posts(), start=1):
            if post["key"] == reply.idempotency_key:
                return PublishResult(posted_id=str(index), url=f"https://example.com/r/{index}")
        return None
