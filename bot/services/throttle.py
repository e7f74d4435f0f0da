"""Outgoing-alert scheduler for chat frontends: keeps the platform's rate limits, drops nothing.

The alerts wait in a :class:`Backlog` (the store's ``alert_queue`` in production), keyed by
destination (a chat, group, topic or channel id); the throttle holds in memory only the alerts
it is sending, so a backlog of any size costs no memory. A frontend supplies two coroutines,
``send_one(dest, alert)`` and ``send_digest(dest, alerts)``. The policy:

1. **Order.** Per destination, urgent alerts go before normal ones; each kind is first in, first
   out. Destinations are served by their own worker, so one slow chat never holds up another.
2. **Limits.** Each :class:`Rate` is a sliding window: at most ``count`` messages in any
   ``per`` seconds. A message waits until every per-destination and every global window allows
   it. A digest counts as one message.
3. **Digests.** When a message may go, ``capacity`` is how many messages the destination's
   windows allow within ``digest_horizon`` seconds (this one included). If every pending urgent
   alert fits (pending ≤ capacity), the oldest urgent alert goes alone; otherwise the oldest
   ``digest_size`` urgent alerts go as one urgent digest. Only when no urgent alert is pending
   are normal alerts sent, by the same rule. A digest therefore never mixes urgent and normal
   alerts, never holds a single alert, and an urgent alert is folded only when the urgent
   backlog alone is more than the destination can take within the horizon.
4. **429.** ``send_*`` raises :class:`RateLimited` (the frontend translates its platform's 429):
   the destination, or every destination if ``is_global``, pauses for ``retry_after`` seconds,
   and the same alerts stay at the head of the backlog, to be sent first after the pause.
5. **Other errors.** The alerts stay at the head with one more failed attempt counted; the
   destination backs off 1, 2, 4 … 60 s. An alert that failed ``max_attempts`` times leaves
   the backlog and is handed to ``on_give_up`` (default: logged) so one poisonous message cannot
   block a chat forever. Its mention stays ``alerted`` in the database, so ``pending`` (console,
   /pending) still lists it.
6. **Shutdown.** After ``stop``, sending goes on for at most ``shutdown_grace`` seconds; what is
   left stays in the backlog and is sent after the next start.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Protocol

from bot.domain.models import Draft, Mention, Reply

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class RateLimited(Exception):
    """The platform said "too many requests"; frontends raise it from ``send_*``."""

    def __init__(self, retry_after: float, *, is_global: bool = False) -> None:
        super().__init__(f"rate limited for {retry_after:g} s" + (" (global)" if is_global else ""))
        self.retry_after = max(0.0, retry_after)
        self.is_global = is_global


class ChatUnreachable(RateLimited):
    """The chat could not be reached and the frontend has said so once: the destination pauses
    and its alerts are sent again, without a warning per attempt."""


@dataclass(frozen=True)
class Rate:
    """At most ``count`` messages in any ``per`` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ValueError(f"a rate needs count ≥ 1 and per > 0, not {self.count}/{self.per}")


@dataclass(frozen=True)
class ThrottleLimits:
    """A platform's limits and the digest policy's knobs."""

    per_destination: tuple[Rate, ...]
    global_limits: tuple[Rate, ...] = ()
    digest_horizon: float = 60.0
    """Backlog beyond what a destination can take within this many seconds goes in digests."""
    digest_size: int = 10
    shutdown_grace: float = 5.0
    max_attempts: int = 5

    @property
    def count_limit(self) -> int:
        """Waiting alerts beyond this many change nothing: more than a destination can take
        within the horizon, and more than a digest holds (so a backlog is never counted whole)."""
        bounds = [
            r.count * (math.ceil(self.digest_horizon / r.per) + 1) for r in self.per_destination
        ]
        return max(min(bounds, default=1_000_000), self.digest_size) + 1

    def __post_init__(self) -> None:
        if self.digest_horizon <= 0:
            raise ValueError("digest_horizon must be positive")
        if self.digest_size < 2:
            raise ValueError("a digest holds at least 2 alerts")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


TELEGRAM_LIMITS = ThrottleLimits(
    per_destination=(Rate(20, 60.0), Rate(1, 1.0)), global_limits=(Rate(30, 1.0),)
)
"""Telegram: 20 messages a minute in a group and 1 a second in one chat; 30 a second overall."""

DISCORD_LIMITS = ThrottleLimits(per_destination=(Rate(5, 5.0),), global_limits=(Rate(50, 1.0),))
"""Discord: 5 messages per 5 s per channel (observed bucket); 50 requests a second per bot."""


@dataclass(frozen=True)
class OutgoingAlert:
    """An alert to post: the mention as it is now, its drafts and reply, and whether it is
    urgent; ``attempts`` counts the failed tries so far."""

    mention: Mention
    drafts: tuple[Draft, ...] = ()
    urgent: bool = False
    reply: Reply | None = None
    attempts: int = 0


class Backlog(Protocol):
    """Where alerts wait, per destination; read a few at a time, never all at once."""

    async def destinations(self) -> Collection[Hashable]:
        """The destinations with alerts waiting."""

    async def waiting(self, dest: Hashable, *, at_most: int) -> tuple[int, int]:
        """How many (urgent, normal) alerts wait for ``dest``, each counted up to ``at_most``."""

    async def oldest(self, dest: Hashable, *, urgent: bool, count: int) -> list[OutgoingAlert]:
        """The first ``count`` waiting alerts of one kind for ``dest``, left in place."""

    async def delivered(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Remove alerts that were posted."""

    async def failed(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Count one more failed attempt for alerts that stay waiting."""

    async def give_up(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Remove alerts that failed too often."""

    async def total(self) -> int:
        """How many alerts wait, for every destination."""


class Clock(Protocol):
    """A monotonic time source (seconds) and a way to wait on it; tests inject a fake one."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SendOne = Callable[[Hashable, OutgoingAlert], Awaitable[None]]
SendDigest = Callable[[Hashable, list[OutgoingAlert]], Awaitable[None]]
GiveUp = Callable[[Hashable, OutgoingAlert, Exception], None]


class _Windows:
    """Sliding-window logs of send times, one per rate."""

    def __init__(self, rates: tuple[Rate, ...]) -> None:
        self.rates = rates
        self.logs: list[deque[float]] = [deque() for _ in rates]

    @staticmethod
    def _ready(rate: Rate, sent: deque[float], now: float) -> float:
        while sent and sent[0] <= now - rate.per:
            sent.popleft()
        return now if len(sent) < rate.count else sent[-rate.count] + rate.per

    def ready_at(self, now: float) -> float:
        """The earliest time (≥ now) every window allows one more message."""
        return max(
            (self._ready(r, s, now) for r, s in zip(self.rates, self.logs, strict=True)),
            default=now,
        )

    def record(self, now: float) -> None:
        for sent in self.logs:
            sent.append(now)

    def capacity(self, now: float, horizon: float, upto: int) -> int:
        """How many messages (at most ``upto``) could go in ``[now, now + horizon)``."""
        logs = [deque(s) for s in self.logs]
        t, sent = now, 0
        while sent < upto:
            t = max(
                (self._ready(r, s, t) for r, s in zip(self.rates, logs, strict=True)), default=t
            )
            if t >= now + horizon:
                break
            for s in logs:
                s.append(t)
            sent += 1
        return sent


@dataclass
class _Destination:
    windows: _Windows
    paused_until: float = 0.0
    worker: asyncio.Task[None] | None = None


def log_give_up(dest: Hashable, alert: OutgoingAlert, exc: Exception) -> None:
    """The default ``on_give_up``: log the alert that could not be posted."""
    log.error(
        "gave up posting the alert for mention #%d to %r: %s; it stays in 'pending'",
        alert.mention.id,
        dest,
        exc,
    )


class Throttle:
    """Sends a backlog's alerts to chat destinations within rate limits (see the module
    docstring). ``wake()`` says alerts were added; a worker per destination then reads them."""

    def __init__(
        self,
        backlog: Backlog,
        send_one: SendOne,
        send_digest: SendDigest,
        limits: ThrottleLimits,
        *,
        clock: Clock | None = None,
        on_give_up: GiveUp = log_give_up,
    ) -> None:
        self.backlog = backlog
        self.send_one = send_one
        self.send_digest = send_digest
        self.limits = limits
        self.clock: Clock = clock or MonotonicClock()
        self.on_give_up = on_give_up
        self._count_limit = limits.count_limit
        self._dests: dict[Hashable, _Destination] = {}
        self._global = _Windows(limits.global_limits)
        self._global_paused_until = 0.0
        self._wake = asyncio.Event()
        self._scanned = 0  # scans of the backlog completed (destinations and their brands)
        self._scan_done = asyncio.Condition()
        self._scanning = False
        self._idle = asyncio.Event()
        self._busy = 0
        self._settled = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.held = 0
        """Alerts held in memory right now (those being sent); the rest wait in the backlog."""
        self.messages_sent = 0
        """Messages posted (a digest is one)."""
        self.alerts_sent = 0
        """Alerts delivered, alone or in a digest."""

    def wake(self) -> None:
        """Alerts were added to the backlog: look for them; never blocks."""
        self._wake.set()
        self._idle.clear()
        self._settled.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set, then for at most ``shutdown_grace`` seconds more."""
        self.wake()  # alerts left waiting by an earlier run go first
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                await self._watch(stop)
                drained = asyncio.ensure_future(self._idle.wait())
                grace = asyncio.ensure_future(self.clock.sleep(self.limits.shutdown_grace))
                await asyncio.wait({drained, grace}, return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
                grace.cancel()
            finally:
                self._tasks = None
                for state in self._dests.values():
                    if state.worker is not None:
                        state.worker.cancel()
        left = await self.backlog.total()
        if left:
            log.warning(
                "%d alerts were not posted before shutdown; they are posted after the next start",
                left,
            )

    async def _watch(self, stop: asyncio.Event) -> None:
        """Start a worker for every destination with alerts, at start and on every wake."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if not self._wake.is_set():
                    self._update_settled()
                    woken = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    continue
                self._wake.clear()
                self._scanning = True
                try:
                    for dest in await self.backlog.destinations():
                        self._spawn(dest)
                finally:
                    self._scanning = False
                    async with self._scan_done:
                        self._scanned += 1
                        self._scan_done.notify_all()
                    self._check_idle()
        finally:
            stopping.cancel()

    def _spawn(self, dest: Hashable) -> None:
        state = self._dests.get(dest)
        if state is None:
            state = self._dests[dest] = _Destination(_Windows(self.limits.per_destination))
        if self._tasks is not None and state.worker is None:
            self._busy += 1
            state.worker = self._tasks.create_task(self._work(dest, state))

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is sending."""
        return self._tasks is not None

    @property
    def idle(self) -> bool:
        """Whether every waiting alert has been posted (what :meth:`drain` awaits)."""
        return self._idle.is_set()

    async def drain(self) -> None:
        """Wait until every waiting alert has been posted (``run`` must be running)."""
        if not self._idle.is_set() and self._tasks is None:
            raise RuntimeError("Throttle.drain() needs run() to be running")
        await self._idle.wait()

    async def settled(self) -> None:
        """Wait until every worker waits on the clock or for alerts (a virtual clock advances
        only then, so work in progress, such as reading the backlog, takes no virtual time)."""
        await self._settled.wait()

    def _check_idle(self) -> None:
        working = self._wake.is_set() or self._scanning
        if not working and all(s.worker is None for s in self._dests.values()):
            self._idle.set()
        self._update_settled()

    def _update_settled(self) -> None:
        if self._busy == 0 and not self._wake.is_set() and not self._scanning:
            self._settled.set()
        else:
            self._settled.clear()

    async def _sleep(self, seconds: float) -> None:
        self._busy -= 1
        self._update_settled()
        try:
            await self.clock.sleep(seconds)
        finally:
            self._busy += 1
            self._settled.clear()

    def _ready_at(self, state: _Destination, now: float) -> float:
        return max(
            state.windows.ready_at(now),
            state.paused_until,
            self._global.ready_at(now),
            self._global_paused_until,
        )

    async def _pick(
        self, dest: Hashable, state: _Destination, urgent: int, normal: int
    ) -> list[OutgoingAlert]:
        """What to send now: the oldest alert, or a digest of the oldest ones of one kind."""
        waiting = urgent or normal
        capacity = state.windows.capacity(
            self.clock.now(), self.limits.digest_horizon, upto=waiting
        )
        count = 1 if waiting <= capacity else min(self.limits.digest_size, waiting)
        return await self.backlog.oldest(dest, urgent=urgent > 0, count=count)

    async def _scan_after(self, scanned: int) -> None:
        """Wait until a scan after the ``scanned``-th has completed."""
        async with self._scan_done:
            await self._scan_done.wait_for(lambda: self._scanned > scanned)

    async def _work(self, dest: Hashable, state: _Destination) -> None:
        try:
            while True:
                scanned = self._scanned
                urgent, normal = await self.backlog.waiting(dest, at_most=self._count_limit)
                if not urgent and not normal:
                    if self._wake.is_set() or self._scanning:
                        # New alerts may be on their way to this destination (its brands are
                        # known only after the scan): wait for the scan, then look again.
                        await self._scan_after(scanned)
                        continue
                    if scanned == self._scanned:
                        return
                    continue  # a scan finished meanwhile: look again before leaving
                now = self.clock.now()
                ready = self._ready_at(state, now)
                if ready > now:
                    await self._sleep(ready - now)
                    continue
                alerts = await self._pick(dest, state, urgent, normal)
                now = self.clock.now()
                if not alerts or self._ready_at(state, now) > now:
                    continue  # taken meanwhile, or another destination used the global slot
                state.windows.record(now)
                self._global.record(now)
                await self._send(dest, state, alerts)
        finally:
            self._busy -= 1
            state.worker = None
            self._check_idle()

    async def _send(self, dest: Hashable, state: _Destination, alerts: list[OutgoingAlert]) -> None:
        self.held += len(alerts)
        try:
            if len(alerts) > 1:
                await self.send_digest(dest, alerts)
            else:
                await self.send_one(dest, alerts[0])
        except RateLimited as exc:
            until = self.clock.now() + exc.retry_after
            if exc.is_global:
                self._global_paused_until = max(self._global_paused_until, until)
            else:
                state.paused_until = max(state.paused_until, until)
            level = logging.DEBUG if isinstance(exc, ChatUnreachable) else logging.WARNING
            log.log(level, "posting to %r: %s; %d alerts will be re-sent", dest, exc, len(alerts))
        except Exception as exc:
            log.warning("posting %d alerts to %r failed: %s", len(alerts), dest, exc)
            await self._failed(dest, state, alerts, exc)
        else:
            await self.backlog.delivered(dest, alerts)
            self.messages_sent += 1
            self.alerts_sent += len(alerts)
        finally:
            self.held -= len(alerts)

    async def _failed(
        self, dest: Hashable, state: _Destination, alerts: list[OutgoingAlert], exc: Exception
    ) -> None:
        """Count the failure; give up alerts that failed ``max_attempts`` times; back off."""
        spent = [a for a in alerts if a.attempts + 1 >= self.limits.max_attempts]
        kept = [a for a in alerts if a.attempts + 1 < self.limits.max_attempts]
        if spent:
            await self.backlog.give_up(dest, spent)
            for alert in spent:
                self.on_give_up(dest, alert, exc)
        if kept:
            await self.backlog.failed(dest, kept)
        worst = max(a.attempts for a in alerts) + 1
        state.paused_until = self.clock.now() + min(MAX_BACKOFF, 2.0 ** (worst - 1))
