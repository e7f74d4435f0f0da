"""Events the core publishes to whatever chat frontends are running.

Each subscriber gets its own queue and consumer task, so a slow or rate-limited frontend
never holds up the pipeline or the other frontends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.domain.models import Actor, Draft, Mention, Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MentionAlert:
    """A new mention to show the team, with its current drafts."""

    mention: Mention
    drafts: list[Draft] = field(default_factory=list)


@dataclass(frozen=True)
class MentionChanged:
    """A mention's state, drafts or reply changed; frontends update its alert in place."""

    mention: Mention
    drafts: list[Draft]
    reply: Reply | None
    actor: Actor
    action: str


@dataclass(frozen=True)
class Notice:
    """Something the team should know that is not about one mention (a failing source…)."""

    text: str


Event = MentionAlert | MentionChanged | Notice
Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    """Fan-out of core events to subscribed frontends."""

    def __init__(self) -> None:
        self._queues: dict[str, tuple[asyncio.Queue[Event], Handler]] = {}

    def subscribe(self, name: str, handler: Handler) -> None:
        """Deliver every later event to ``handler`` (in order, one at a time)."""
        self._queues[name] = (asyncio.Queue(), handler)

    def publish(self, event: Event) -> None:
        """Queue an event for every subscriber; never blocks."""
        for queue, _ in self._queues.values():
            queue.put_nowait(event)

    def pending(self) -> int:
        """Events not yet handled, summed over subscribers."""
        return sum(q.qsize() for q, _ in self._queues.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver events until ``stop`` is set and the queues are drained."""
        async with asyncio.TaskGroup() as tg:
            for name, (queue, handler) in self._queues.items():
                tg.create_task(self._deliver(name, queue, handler, stop))

    @staticmethod
    async def _deliver(
        name: str, queue: asyncio.Queue[Event], handler: Handler, stop: asyncio.Event
    ) -> None:
        while not (stop.is_set() and queue.empty()):
            try:
                event = await asyncio.wait_for(queue.get(), timeout=0.2)
            except TimeoutError:
                continue
            try:
                await handler(event)
            except Exception:
                log.exception("frontend %s failed to handle %s", name, type(event).__name__)
            finally:
                queue.task_done()

    async def drain(self, name: str | None = None) -> None:
        """Wait until every queued event (of one subscriber, if named) has been handled."""
        for subscriber, (queue, _) in self._queues.items():
            if name is None or name == subscriber:
                await queue.join()
