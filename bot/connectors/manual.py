"""The manual publisher: the reply is ready to copy; a CM posts it and confirms."""

from __future__ import annotations

from bot.connectors.base import PublishResult
from bot.domain.models import Mention, Reply


class ManualPublisher:
    """For platforms Parley cannot post to (Hacker News, news sites, feeds)."""

    name = "manual"

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Nothing is sent: the reply waits for a person to post it (under the mention's
        link) and confirm, with the link to their reply if they give one."""
        return PublishResult(manual=True)

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """Publishing sends nothing, so it is always safe to run again."""
        return None
