"""The posting worker: sends queued replies exactly once.

Exactly-once rules: a reply's idempotency key is stored when it is approved, and the reply is
marked ``sending`` (committed) before any request. A reply found ``sending`` at start-up was
interrupted with an unknown outcome: the publisher reconciles it (finds its earlier post, or
relies on the platform's idempotency key) before anything is sent again. Retryable errors back
off exponentially (or as long as the platform's Retry-After says); permanent ones end ``dead``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from bot.domain.models import SYSTEM, Reply, utcnow
from bot.domain.states import MentionState, ReplyState
from bot.errors import PublishError
from bot.events import EventBus, MentionChanged
from bot.publishers.registry import Publishers
from bot.storage.repo import Store

log = logging.getLogger(__name__)


class Outbox:
    """Sends due replies through their publisher; wakes when a reply is queued."""

    def __init__(
        self,
        store: Store,
        publishers: Publishers,
        bus: EventBus,
        *,
        max_attempts: int = 5,
        base_delay: float = 30.0,
        max_delay: float = 3600.0,
    ) -> None:
        self.store = store
        self.publishers = publishers
        self.bus = bus
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due replies now."""
        self._wake.set()

    async def recover(self) -> None:
        """Settle replies a crash left in ``sending``: reconcile, then sent or re-queued."""
        for reply in await self.store.replies([ReplyState.SENDING], limit=1000):
            mention = await self.store.get_mention(reply.mention_id)
            publisher = self.publishers.get(reply.publisher)
            try:
                found = await publisher.reconcile(reply, mention)
            except Exception as exc:
                # Unknown outcome and the platform cannot tell yet: re-sending could post twice,
                # so the reply stays "sending" and is reconciled again on the next round.
                log.warning("reply #%d: cannot check whether it was posted (%s)", reply.id, exc)
                continue
            if found is not None:
                log.info("reply #%d had been posted before the restart", reply.id)
                await self._finish(reply, found.posted_id, found.url, "reconciled", found.cost_usd)
            else:
                await self.store.transition_reply(
                    reply.id, ReplyState.QUEUED, SYSTEM, "requeue_after_restart"
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Send due replies until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.recover()
                await self.send_due()
            except Exception:
                log.exception("outbox iteration failed; retrying shortly")
            await self._sleep_until_due(stop)

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        due = await self.store.next_due_at()
        timeout = 60.0
        if due is not None:
            timeout = min(timeout, max(0.0, (due - utcnow()).total_seconds()))
        self._wake.clear()
        waiters = {asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())}
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def send_due(self) -> int:
        """Send every reply that is due now; returns how many were attempted."""
        count = 0
        while batch := await self.store.due_replies(utcnow()):
            for reply in batch:
                await self.send(reply)
                count += 1
        return count

    async def send(self, reply: Reply) -> None:
        """One attempt at one reply."""
        mention = await self.store.get_mention(reply.mention_id)
        publisher = self.publishers.get(reply.publisher)
        reply = await self.store.transition_reply(
            reply.id, ReplyState.SENDING, SYSTEM, "send", count_attempt=True
        )
        try:
            result = await publisher.publish(reply, mention)
        except PublishError as exc:
            await self._failed(reply, exc)
            return
        except Exception as exc:
            log.exception("publisher %s crashed on reply #%d", publisher.name, reply.id)
            await self._failed(reply, PublishError(f"unexpected error ({type(exc).__name__})"))
            return
        if result.manual:
            reply = await self.store.transition_reply(
                reply.id,
                ReplyState.AWAITING_MANUAL,
                SYSTEM,
                "ready_to_copy",
                posted_url=result.url,
            )
            await self._notify(reply, "ready_to_copy")
        else:
            await self._finish(reply, result.posted_id, result.url, "sent", result.cost_usd)

    async def _finish(
        self,
        reply: Reply,
        posted_id: str | None,
        url: str | None,
        action: str,
        cost_usd: float | None = None,
    ) -> None:
        reply = await self.store.transition_reply(
            reply.id,
            ReplyState.SENT,
            SYSTEM,
            action,
            posted_id=posted_id,
            posted_url=url,
            cost_usd=cost_usd,
            mention_target=MentionState.POSTED,
        )
        await self._notify(reply, action)

    async def _failed(self, reply: Reply, exc: PublishError) -> None:
        message = str(exc)
        if exc.permanent or reply.attempts >= self.max_attempts:
            why = message if exc.permanent else f"{message} (gave up after {reply.attempts} tries)"
            reply = await self.store.transition_reply(
                reply.id, ReplyState.DEAD, SYSTEM, "dead", error=why
            )
            log.warning("reply #%d is dead: %s", reply.id, why)
            await self._notify(reply, "dead")
            return
        delay = exc.retry_after
        if delay is None:
            delay = min(self.max_delay, self.base_delay * 2.0 ** (reply.attempts - 1))
        await self.store.transition_reply(
            reply.id, ReplyState.FAILED, SYSTEM, "failed", error=message
        )
        reply = await self.store.transition_reply(
            reply.id,
            ReplyState.QUEUED,
            SYSTEM,
            "retry_scheduled",
            error=message,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
        log.info("reply #%d failed (%s); retrying in %.0fs", reply.id, message, delay)
        await self._notify(reply, "retry_scheduled")

    async def _notify(self, reply: Reply, action: str) -> None:
        mention = await self.store.get_mention(reply.mention_id)
        drafts = await self.store.current_drafts(reply.mention_id)
        self.bus.publish(MentionChanged(mention, drafts, reply, SYSTEM, action))
