"""The posting worker: sends queued replies exactly once.

Exactly-once rules: a reply's idempotency key is stored when it is approved, and the reply is
marked ``sending`` (committed and fsynced) before any request. A reply found ``sending`` at
start-up was interrupted with an unknown outcome: the publisher reconciles it (finds its earlier
post, or relies on the platform's idempotency key) before anything is sent again. That list is
taken once, at start, by the process holding the database's instance lock (see
``bot.storage.instance_lock``), so no other sender can be in flight; a reply the platform cannot
settle yet stays ``sending`` and is asked about again with backoff. Replies this outbox sends
itself are never reconciled while in flight. Retryable errors back off exponentially (or as long
as the platform's Retry-After says); permanent ones end ``dead``. Every time the outbox reads
or waits on goes through its :class:`WallClock`, so tests can move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.changes import Changes
from bot.connectors.registry import Publishers
from bot.domain.models import SYSTEM, Reply, utcnow
from bot.domain.states import MentionState, ReplyState
from bot.errors import PublishError
from bot.storage.store import Store

log = logging.getLogger(__name__)

_RECOVER_LIMIT = 100_000
"""Replies listed at start: far more than a team ever has in flight."""


_IDLE_WAIT = 60.0
"""Seconds between passes when nothing is due and nothing wakes the outbox."""


class WallClock(Protocol):
    """UTC wall time (due times are stored in the database) and a way to wait on it; tests
    inject one they move forward."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return utcnow()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(seconds)


@dataclass
class _Unsettled:
    """A reply found ``sending`` at start that its platform could not settle yet."""

    tries: int = 0
    next_at: datetime | None = None  # None: ask at once


class Outbox:
    """Sends due replies through their publisher; wakes when a reply is queued."""

    def __init__(
        self,
        store: Store,
        publishers: Publishers,
        changes: Changes,
        *,
        max_attempts: int = 5,
        base_delay: float = 30.0,
        max_delay: float = 3600.0,
        clock: WallClock | None = None,
    ) -> None:
        self.store = store
        self.publishers = publishers
        self.changes = changes
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock: WallClock = clock or SystemClock()
        self._wake = asyncio.Event()
        self._unsettled: dict[int, _Unsettled] | None = None  # None until recover() listed them
        self._in_flight: set[int] = set()
        self._running = False
        self._passes_started = 0
        self._passes_done = 0
        self._pass_done = asyncio.Condition()
        self._quiet = asyncio.Event()
        """Set while running after a clean pass left nothing due, unsettled or woken since."""

    def wake(self) -> None:
        """Look for due replies now."""
        self._quiet.clear()
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is sending."""
        return self._running

    async def quiesce(self) -> None:
        """Wait until a pass over due replies that started after this call has finished, its
        changes published on the bus (``run`` must be running)."""
        target = self._passes_started + 1
        self.wake()
        async with self._pass_done:
            await self._pass_done.wait_for(lambda: self._passes_done >= target)

    async def recover(self) -> None:
        """Settle the replies a previous run left in ``sending``: reconcile, then sent or
        re-queued. The first call lists them; later calls ask again only about those the
        platform could not settle yet (they stay ``sending`` meanwhile, never re-sent blind)."""
        if self._unsettled is None:
            found = await self.store.replies.in_states([ReplyState.SENDING], limit=_RECOVER_LIMIT)
            self._unsettled = {r.id: _Unsettled() for r in found if r.id not in self._in_flight}
            if self._unsettled:
                log.info(
                    "%d replies were being sent when Parley last stopped; checking the platforms",
                    len(self._unsettled),
                )
        await self._reconcile_unsettled(due_only=False)

    async def _reconcile_unsettled(self, *, due_only: bool) -> None:
        """Ask each platform about the unsettled replies (only those due, with ``due_only``)."""
        unsettled = self._unsettled or {}
        for reply_id, retry in sorted(unsettled.items()):
            now = self.clock.now()
            if due_only and retry.next_at is not None and retry.next_at > now:
                continue
            reply = await self.store.replies.get(reply_id)
            if reply.state is not ReplyState.SENDING or await self._reconcile(reply):
                del unsettled[reply_id]
                continue
            retry.tries += 1
            delay = min(self.max_delay, self.base_delay * 2.0 ** (retry.tries - 1))
            retry.next_at = now + timedelta(seconds=delay)

    async def _reconcile(self, reply: Reply) -> bool:
        """Reconcile one interrupted reply; False when the platform cannot tell yet."""
        mention = await self.store.mentions.get(reply.mention_id)
        publisher = self.publishers.get(reply.publisher)
        try:
            found = await publisher.reconcile(reply, mention)
        except Exception as exc:
            # Unknown outcome and the platform cannot tell yet: re-sending could post twice,
            # so the reply stays "sending" and is reconciled again later.
            log.warning("reply #%d: cannot check whether it was posted (%s)", reply.id, exc)
            return False
        if found is not None:
            log.info("reply #%d had been posted before the restart", reply.id)
            await self._finish(reply, found.posted_id, found.url, "reconciled", found.cost_usd)
        else:
            await self.store.replies.transition(
                reply.id, ReplyState.QUEUED, SYSTEM, "requeue_after_restart"
            )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Send due replies until ``stop`` is set (first settling what a previous run left)."""
        self._running = True
        try:
            while not stop.is_set():
                self._wake.clear()  # a wake() during the pass below runs another pass at once
                self._passes_started += 1
                clean = await self._pass()
                if clean and not self._wake.is_set() and not self._unsettled:
                    self._quiet.set()
                async with self._pass_done:
                    self._passes_done = self._passes_started
                    self._pass_done.notify_all()
                await self._sleep_until_due(stop)
        finally:
            self._running = False
            self._quiet.clear()

    async def _pass(self) -> bool:
        """Settle what is unsettled and due, send what is due; False if the pass failed."""
        self._quiet.clear()
        try:
            if self._unsettled is None:
                await self.recover()
            else:
                await self._reconcile_unsettled(due_only=True)
            await self.send_due()
        except Exception:
            log.exception("outbox iteration failed; retrying shortly")
            return False
        return True

    async def idle(self) -> bool:
        """Whether nothing is due, unsettled or being sent: while running, a clean pass found
        nothing more to send and nothing was queued since; while stopped, per the store."""
        if self._running:
            return self._quiet.is_set()
        due = await self.store.replies.due(self.clock.now())
        sending = await self.store.replies.in_states([ReplyState.SENDING], limit=1)
        return not due and not sending

    async def wait_idle(self) -> None:
        """Wait until :meth:`idle` is true (while stopped with work left: until a run has
        sent it)."""
        if not await self.idle():
            await self._quiet.wait()

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        due = [u.next_at for u in (self._unsettled or {}).values() if u.next_at is not None]
        if (queued := await self.store.replies.next_due_at()) is not None:
            due.append(queued)
        timeout = _IDLE_WAIT
        if due:
            timeout = min(timeout, max(0.0, (min(due) - self.clock.now()).total_seconds()))
        waiters = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.clock.sleep(timeout)),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()

    async def send_due(self) -> int:
        """Send every reply that is due now; returns how many were attempted."""
        count = 0
        while batch := await self.store.replies.due(self.clock.now()):
            for reply in batch:
                await self.send(reply)
                count += 1
        return count

    async def send(self, reply: Reply) -> None:
        """One attempt at one reply (never reconciled by this outbox while in flight)."""
        self._in_flight.add(reply.id)
        try:
            await self._attempt(reply)
        finally:
            self._in_flight.discard(reply.id)

    async def _attempt(self, reply: Reply) -> None:
        mention = await self.store.mentions.get(reply.mention_id)
        publisher = self.publishers.get(reply.publisher)
        reply = await self.store.replies.transition(
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
            reply = await self.store.replies.transition(
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
        reply = await self.store.replies.transition(
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
            reply = await self.store.replies.transition(
                reply.id, ReplyState.DEAD, SYSTEM, "dead", error=why
            )
            log.warning("reply #%d is dead: %s", reply.id, why)
            await self._notify(reply, "dead")
            return
        delay = exc.retry_after
        if delay is None:
            delay = min(self.max_delay, self.base_delay * 2.0 ** (reply.attempts - 1))
        await self.store.replies.transition(
            reply.id, ReplyState.FAILED, SYSTEM, "failed", error=message
        )
        reply = await self.store.replies.transition(
            reply.id,
            ReplyState.QUEUED,
            SYSTEM,
            "retry_scheduled",
            error=message,
            next_attempt_at=self.clock.now() + timedelta(seconds=delay),
        )
        if exc.retry_after is not None:  # the platform asked to wait (429): one warning line
            log.warning(
                "reply #%d: rate limited, retrying in %.0f s (%s)", reply.id, delay, message
            )
        else:
            log.info("reply #%d failed (%s); retrying in %.0fs", reply.id, message, delay)
        await self._notify(reply, "retry_scheduled")

    async def _notify(self, reply: Reply, action: str) -> None:
        await self.changes.publish(reply.mention_id, SYSTEM, action)
