"""The log publisher: records the reply in the log as posted. Used by `parley demo`."""

from __future__ import annotations

import logging

from bot.connectors.base import PublishResult
from bot.domain.models import Mention, Reply

log = logging.getLogger(__name__)


class LogPublisher:
    """Pretends to post: writes the reply to the log and reports success."""

    name = "log"

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Log the reply; its idempotency key stands in for the posted id."""
        log.info("posted reply #%d to mention #%d: %s", reply.id, mention.id, reply.text)
        return PublishResult(posted_id=reply.idempotency_key, url=f"log://reply/{reply.id}")

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The log keeps no record to look up, so an interrupted send is treated as not sent."""
        return None
