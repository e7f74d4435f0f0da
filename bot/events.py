"""Events the core publishes to whatever chat frontends are running.

Each subscriber gets its own inbox and consumer task, so a slow or rate-limited frontend never
holds up the pipeline or the other frontends. An inbox is bounded, so a slow frontend never
grows memory either:

- ``MentionChanged`` events are coalesced by mention: only the latest change of a mention waits
  (a chat frontend re-renders the whole alert anyway); at most ``max_changes`` mentions wait, the
  oldest change is dropped beyond that (its alert is refreshed by the mention's next change). A
  subscriber that prints every change as a line of its own (the console) subscribes with
  ``coalesce=False``: its last ``max_changes`` changes wait, each one.
- ``MentionAlert`` events are a courtesy copy: the alerts themselves wait in the store
  (``alert_queue``), where the chat frontends' alert-delivery services read them (those
  frontends subscribe with ``alerts=False``). At most ``max_alerts`` wait in an inbox; the
  oldest are dropped beyond that.
- At most ``max_notices`` notices wait; the oldest are dropped beyond that.

Events are handled in the order they were published; a coalesced change takes the place of its
latest version.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
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


class MentionSignal:
    """An awaited notification about one mention that another service listens to, e.g. "its
    alert was shown". build_core creates it and passes it to the constructors of the sender
    (which calls ``emit``) and of the listener (which connects), so neither needs the other."""

    def __init__(self) -> None:
        self._handlers: list[Callable[[int], Awaitable[None]]] = []

    def connect(self, handler: Callable[[int], Awaitable[None]]) -> None:
        """Call ``handler`` with the mention id on every later ``emit``."""
        self._handlers.append(handler)

    async def emit(self, mention_id: int) -> None:
        """Notify every listener, in the order they connected."""
        for handler in self._handlers:
            await handler(mention_id)


@dataclass(frozen=True)
class InboxLimits:
    """How many events of each kind may wait for one subscriber."""

    max_alerts: int = 256
    max_changes: int = 1024
    max_notices: int = 64


class _Inbox:
    """One subscriber's waiting events, bounded per kind (see the module docstring)."""

    def __init__(
        self, handler: Handler, limits: InboxLimits, *, coalesce: bool, alerts: bool
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.coalesce = coalesce
        self.wants_alerts = alerts
        self.alerts: deque[tuple[int, MentionAlert]] = deque()
        self.changes: OrderedDict[int, tuple[int, MentionChanged]] = OrderedDict()
        self.notices: deque[tuple[int, Notice]] = deque()
        self.dropped = 0
        self.ready = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def __len__(self) -> int:
        return len(self.alerts) + len(self.changes) + len(self.notices)

    def put(self, seq: int, event: Event) -> None:
        """Add an event, coalescing a mention's changes and dropping the oldest beyond limits."""
        if isinstance(event, MentionChanged):
            key = event.mention.id if self.coalesce else seq
            self.changes.pop(key, None)
            self.changes[key] = (seq, event)
            if len(self.changes) > self.limits.max_changes:
                self.changes.popitem(last=False)
                self._drop()
        elif isinstance(event, MentionAlert):
            if not self.wants_alerts:
                return
            self.alerts.append((seq, event))
            if len(self.alerts) > self.limits.max_alerts:
                self.alerts.popleft()
                self._drop()
        else:
            self.notices.append((seq, event))
            if len(self.notices) > self.limits.max_notices:
                self.notices.popleft()
                self._drop()
        self.idle.clear()
        self.ready.set()

    def _drop(self) -> None:
        if self.dropped == 0:
            log.warning("a frontend is falling behind: dropping its oldest waiting events")
        self.dropped += 1

    def take(self) -> Event | None:
        """The oldest waiting event, if any."""
        heads: list[tuple[int, int]] = []
        if self.alerts:
            heads.append((self.alerts[0][0], 0))
        if self.changes:
            heads.append((next(iter(self.changes.values()))[0], 1))
        if self.notices:
            heads.append((self.notices[0][0], 2))
        if not heads:
            return None
        kind = min(heads)[1]
        if kind == 0:
            return self.alerts.popleft()[1]
        if kind == 1:
            return self.changes.popitem(last=False)[1][1]
        return self.notices.popleft()[1]


class EventBus:
    """Fan-out of core events to subscribed frontends, bounded per subscriber."""

    def __init__(self, limits: InboxLimits | None = None) -> None:
        self.limits = limits or InboxLimits()
        self._inboxes: dict[str, _Inbox] = {}
        self._seq = 0
        self._ended = asyncio.Event()
        """Set once ``run`` has returned: nothing handles events any more."""

    def subscribe(
        self, name: str, handler: Handler, *, coalesce: bool = True, alerts: bool = True
    ) -> None:
        """Deliver later events to ``handler`` (in order, one at a time); with ``coalesce``,
        only the latest waiting change of a mention; without ``alerts``, no MentionAlert."""
        self._inboxes[name] = _Inbox(handler, self.limits, coalesce=coalesce, alerts=alerts)

    def publish(self, event: Event) -> None:
        """Queue an event for every subscriber; never blocks."""
        self._seq += 1
        for inbox in self._inboxes.values():
            inbox.put(self._seq, event)

    def pending(self) -> int:
        """Events not yet handled, summed over subscribers."""
        return sum(len(i) + (not i.idle.is_set()) for i in self._inboxes.values())

    @property
    def idle(self) -> bool:
        """Whether every event was handled, or ``run`` has ended (what :meth:`drain` awaits)."""
        return self._ended.is_set() or all(i.idle.is_set() for i in self._inboxes.values())

    def waiting(self, name: str) -> int:
        """Events waiting for one subscriber (never more than its limits allow)."""
        return len(self._inboxes[name])

    def dropped(self, name: str) -> int:
        """Events dropped for one subscriber because it fell behind."""
        return self._inboxes[name].dropped

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver events until ``stop`` is set and the inboxes are drained."""
        self._ended.clear()
        try:
            async with asyncio.TaskGroup() as tg:
                for name, inbox in self._inboxes.items():
                    tg.create_task(self._deliver(name, inbox, stop))
        finally:
            self._ended.set()

    @staticmethod
    async def _deliver(name: str, inbox: _Inbox, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                event = inbox.take()
                if event is None:
                    inbox.idle.set()
                    if stop.is_set():
                        return
                    inbox.ready.clear()
                    woken = asyncio.ensure_future(inbox.ready.wait())
                    await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    continue
                try:
                    await inbox.handler(event)
                except Exception:
                    log.exception("frontend %s failed to handle %s", name, type(event).__name__)
        finally:
            stopping.cancel()

    async def drain(self, name: str | None = None) -> None:
        """Wait until every waiting event (of one subscriber, if named) has been handled, or
        until ``run`` has ended (an event published while stopping is never handled)."""
        for subscriber, inbox in self._inboxes.items():
            if name is None or name == subscriber:
                idle = asyncio.ensure_future(inbox.idle.wait())
                ended = asyncio.ensure_future(self._ended.wait())
                await asyncio.wait({idle, ended}, return_when=asyncio.FIRST_COMPLETED)
                idle.cancel()
                ended.cancel()
