"""Alert delivery, written once for every chat frontend: route, throttle, send, remember the
alert's place, keep it up to date.

The life of an alert: the alerter queues a mention in the store (``alert_queue``) for every
running frontend and wakes their :class:`AlertDelivery`. Each service routes the mention's brand
to a destination with the function its frontend supplies, and its :class:`~bot.services.throttle.
Throttle` reads the oldest alerts of each destination a few at a time, within the platform's
limits (urgent first, digests when the backlog is more than the chat can take, pauses on 429,
back-off and give-up on errors). An alert is rendered from the mention as it is when its turn
comes, so a change while it waits needs nothing more; a posted alert's reference is stored
(``set_alert_ref``) and every later change edits it in place, after a restart too. A change that
arrives while its alert is being sent is applied by an edit right after (at most one batch of
such changes is remembered). Memory does not grow with the backlog: only the alerts being sent
are held; the rest wait in SQLite, and after a restart they are picked up from there.

A frontend is an adapter (:class:`ChatAdapter`): it renders and sends (``send``, ``send_digest``,
``edit``, ``notice``) and turns its platform's 429 into
:class:`~bot.services.throttle.RateLimited`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from typing import Protocol

from bot.domain.models import Draft, Mention, Reply
from bot.events import Event, MentionAlert, MentionChanged
from bot.services.throttle import (
    Clock,
    GiveUp,
    OutgoingAlert,
    Throttle,
    ThrottleLimits,
    log_give_up,
)
from bot.storage.store import Store

log = logging.getLogger(__name__)

Destination = Hashable
"""Where an alert goes on a platform (a chat and topic, a channel id…)."""


class ChatAdapter(Protocol):
    """What a chat frontend supplies to have alerts delivered."""

    def route(self, brand: str) -> Destination | None:
        """Where a brand's alerts go (None: nowhere on this platform)."""

    async def send(self, dest: Destination, alert: OutgoingAlert) -> str | None:
        """Post one alert; its reference for later edits (None if the platform refused it).
        Raise RateLimited on a 429 or a transient failure."""

    async def send_digest(self, dest: Destination, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message (raise RateLimited as for ``send``)."""

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        """Re-render a posted alert in place."""

    async def notice(self, text: str) -> None:
        """Show a notice to the team."""


class StoreBacklog:
    """One frontend's queue in the store, seen per destination through its routing."""

    def __init__(self, store: Store, frontend: str, adapter: ChatAdapter) -> None:
        self.store = store
        self.queue = store.alert_queue
        self.frontend = frontend
        self.adapter = adapter
        self._brands: dict[Destination, list[str]] = {}

    async def destinations(self) -> Collection[Destination]:
        """Destinations with alerts waiting; alerts of a brand routed nowhere are dropped from
        this frontend's queue (their mentions stay in 'pending')."""
        routes: dict[Destination, list[str]] = {}
        unrouted = []
        for brand in await self.queue.brands(self.frontend):
            dest = self.adapter.route(brand)
            if dest is None:
                unrouted.append(brand)
            else:
                routes.setdefault(dest, []).append(brand)
        if unrouted:
            dropped = await self.queue.remove_brands(self.frontend, unrouted)
            log.warning(
                "no %s destination for brand %s: %d alerts not posted there (they stay in "
                "'pending'); route the brand or set the frontend's default alert chat",
                self.frontend,
                ", ".join(unrouted),
                dropped,
            )
        self._brands = routes
        return list(routes)

    async def waiting(self, dest: Destination, *, at_most: int) -> tuple[int, int]:
        """(urgent, normal) alerts waiting for ``dest``, each counted up to ``at_most``."""
        brands = self._brands.get(dest)
        if not brands:
            return 0, 0
        return await self.queue.counts(self.frontend, brands, at_most=at_most)

    async def oldest(self, dest: Destination, *, urgent: bool, count: int) -> list[OutgoingAlert]:
        """The first ``count`` alerts of one kind, each with its mention as it is now."""
        brands = self._brands.get(dest)
        if not brands:
            return []
        queued = await self.queue.oldest(self.frontend, brands, urgent=urgent, limit=count)
        alerts = []
        for item in queued:
            mention_id = item.mention_id
            alerts.append(
                OutgoingAlert(
                    await self.store.mentions.get(mention_id),
                    tuple(await self.store.drafts.current(mention_id)),
                    item.urgent,
                    await self.store.replies.for_mention(mention_id),
                    item.attempts,
                )
            )
        return alerts

    async def delivered(self, dest: Destination, alerts: list[OutgoingAlert]) -> None:
        """Posted: leave the queue."""
        await self.queue.remove(self.frontend, [a.mention.id for a in alerts])

    async def failed(self, dest: Destination, alerts: list[OutgoingAlert]) -> None:
        """One more failed attempt each."""
        await self.queue.failed(self.frontend, [a.mention.id for a in alerts])

    async def give_up(self, dest: Destination, alerts: list[OutgoingAlert]) -> None:
        """Failed too often: leave the queue (the mentions stay in 'pending')."""
        await self.queue.remove(self.frontend, [a.mention.id for a in alerts])

    async def total(self) -> int:
        """Alerts waiting for this frontend, everywhere."""
        return await self.queue.total(self.frontend)


class AlertDelivery:
    """One frontend's alert delivery: queue → throttle → adapter, and edits on change."""

    def __init__(
        self,
        store: Store,
        name: str,
        adapter: ChatAdapter,
        limits: ThrottleLimits,
        *,
        clock: Clock | None = None,
        on_give_up: GiveUp = log_give_up,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.name = name
        """The frontend's name, under which alerts are queued and references stored."""
        self.throttle = Throttle(
            StoreBacklog(store, name, adapter),
            self._send_one,
            self._send_digest,
            limits,
            clock=clock,
            on_give_up=on_give_up,
        )
        self._sending: set[int] = set()
        self._changed: set[int] = set()
        """Mentions that changed while their alert was being sent (edited once it is)."""
        self.on_posted: Callable[[int], Awaitable[None]] = _nothing
        """Called with a mention's id once its alert was posted on its own (not in a digest);
        the registry sets it (automatic drafts start then)."""

    @property
    def held(self) -> int:
        """Alerts and changes this service holds in memory right now (bounded by one batch)."""
        return self.throttle.held + len(self._changed)

    def wake(self) -> None:
        """Alerts were queued for this frontend."""
        self.throttle.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` (then for the throttle's grace period)."""
        await self.throttle.run(stop)

    async def drain(self) -> None:
        """Wait until every queued alert was posted (``run`` must be running)."""
        await self.throttle.drain()

    async def on_event(self, event: Event) -> None:
        """A core event: an alert wakes the queue, a change edits, a notice is shown."""
        if isinstance(event, MentionAlert):
            self.wake()
        elif isinstance(event, MentionChanged):
            await self.on_change(event)
        else:
            await self.adapter.notice(event.text)

    async def on_change(self, event: MentionChanged) -> None:
        """Edit the alert in place if it was posted; if it is being sent, edit it right after;
        if it still waits in the queue, it will be rendered as it is then."""
        mention_id = event.mention.id
        ref = event.mention.alert_refs.get(self.name)
        if ref is not None:
            await self.adapter.edit(ref, event.mention, event.drafts, event.reply)
        elif mention_id in self._sending:
            self._changed.add(mention_id)
        elif self.name in (await self.store.mentions.get(mention_id)).alert_refs:
            await self.refresh(mention_id)  # posted since the event was made

    async def refresh(self, mention_id: int) -> None:
        """Edit a mention's alert to its current state, read from the store."""
        mention = await self.store.mentions.get(mention_id)
        ref = mention.alert_refs.get(self.name)
        if ref is None:
            return
        drafts = await self.store.drafts.current(mention_id)
        await self.adapter.edit(
            ref, mention, drafts, await self.store.replies.for_mention(mention_id)
        )

    async def _send_one(self, dest: Destination, alert: OutgoingAlert) -> None:
        mention_id = alert.mention.id
        self._sending.add(mention_id)
        try:
            ref = await self.adapter.send(dest, alert)
            if ref is not None:
                await self.store.mentions.set_alert_ref(mention_id, self.name, ref)
        finally:
            self._sending.discard(mention_id)
            changed = mention_id in self._changed
            self._changed.discard(mention_id)
        if changed and ref is not None:
            await self.refresh(mention_id)
        if ref is not None:
            await self.on_posted(mention_id)

    async def _send_digest(self, dest: Destination, alerts: list[OutgoingAlert]) -> None:
        ids = {a.mention.id for a in alerts}
        self._sending |= ids
        try:
            await self.adapter.send_digest(dest, alerts)
        finally:
            self._sending -= ids
            self._changed -= ids  # a digest is not edited: its buttons are in /pending


async def _nothing(mention_id: int) -> None:
    return None


class AlertDeliveries:
    """The running frontends' delivery services: the alerter queues each alert for all."""

    def __init__(self, store: Store) -> None:
        self.queue = store.alert_queue
        self._services: dict[str, AlertDelivery] = {}
        self.on_posted: Callable[[int], Awaitable[None]] = _nothing
        """Given to every service: an alert was posted on its own (build_core sets it)."""

    def register(self, service: AlertDelivery) -> None:
        """Queue later alerts for ``service`` too (a frontend registers when it is built)."""
        self._services[service.name] = service
        service.on_posted = self._posted

    def any(self) -> bool:
        """Whether any chat frontend delivers alerts."""
        return bool(self._services)

    async def _posted(self, mention_id: int) -> None:
        await self.on_posted(mention_id)

    async def enqueue(self, mentions: Sequence[Mention]) -> None:
        """Queue alerts for every registered frontend and wake their services."""
        if not self._services or not mentions:
            return
        await self.queue.enqueue(
            list(self._services), [(m.id, m.brand, m.urgent) for m in mentions]
        )
        for service in self._services.values():
            service.wake()

    async def drain(self) -> None:
        """Wait until every running service has posted what waits in its queue."""
        for service in self._services.values():
            if service.throttle.running:
                await service.drain()
