"""Outgoing-alert scheduler for chat frontends: keeps the platform's rate limits, drops nothing.

A frontend submits alerts keyed by destination (a chat, group, topic or channel id) and supplies
two coroutines, ``send_one(dest, alert)`` and ``send_digest(dest, alerts)``. The policy:

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
   and the same alerts go back to the head of their queue, to be sent first after the pause.
5. **Other errors.** The alerts go back to the head; the destination backs off 1, 2, 4 … 60 s.
   An alert that failed ``max_attempts`` times is handed to ``on_give_up`` (default: logged) so
   one poisonous message cannot block a chat forever. Its mention stays ``alerted`` in the
   database, so ``pending`` (console, /pending) still lists it.
6. **Shutdown.** After ``stop``, sending goes on for at most ``shutdown_grace`` seconds; what is
   left is logged. Those mentions are ``alerted`` in the database: ``pending`` shows them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from bot.domain.models import Draft, Mention
from bot.events import MentionAlert

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class RateLimited(Exception):
    """The platform said "too many requests"; frontends raise it from ``send_*``."""

    def __init__(self, retry_after: float, *, is_global: bool = False) -> None:
        super().__init__(f"rate limited for {retry_after:g} s" + (" (global)" if is_global else ""))
        self.retry_after = max(0.0, retry_after)
        self.is_global = is_global


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
    """An alert to post: the mention, its drafts, and whether it is urgent."""

    mention: Mention
    drafts: tuple[Draft, ...] = ()
    urgent: bool = False

    @classmethod
    def from_event(cls, event: MentionAlert) -> OutgoingAlert:
        """The alert for a core ``MentionAlert`` event."""
        return cls(event.mention, tuple(event.drafts), event.mention.urgent)


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
class _Entry:
    alert: OutgoingAlert
    attempts: int = 0


@dataclass
class _Destination:
    windows: _Windows
    urgent: deque[_Entry] = field(default_factory=deque)
    normal: deque[_Entry] = field(default_factory=deque)
    paused_until: float = 0.0
    worker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.urgent) + len(self.normal)

    def requeue(self, entries: list[_Entry]) -> None:
        """Put entries back at the head of their queue, in their original order."""
        for entry in reversed(entries):
            (self.urgent if entry.alert.urgent else self.normal).appendleft(entry)


def _log_give_up(dest: Hashable, alert: OutgoingAlert, exc: Exception) -> None:
    log.error(
        "gave up posting the alert for mention #%d to %r: %s; it stays in 'pending'",
        alert.mention.id,
        dest,
        exc,
    )


class Throttle:
    """Schedules alerts to chat destinations within rate limits (see the module docstring)."""

    def __init__(
        self,
        send_one: SendOne,
        send_digest: SendDigest,
        limits: ThrottleLimits,
        *,
        clock: Clock | None = None,
        on_give_up: GiveUp = _log_give_up,
    ) -> None:
        self.send_one = send_one
        self.send_digest = send_digest
        self.limits = limits
        self.clock: Clock = clock or MonotonicClock()
        self.on_give_up = on_give_up
        self._dests: dict[Hashable, _Destination] = {}
        self._global = _Windows(limits.global_limits)
        self._global_paused_until = 0.0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: asyncio.TaskGroup | None = None
        self.messages_sent = 0
        """Messages posted (a digest is one)."""
        self.alerts_sent = 0
        """Alerts delivered, alone or in a digest."""

    def submit(self, dest: Hashable, alert: OutgoingAlert) -> None:
        """Queue an alert for ``dest``; never blocks."""
        state = self._dests.get(dest)
        if state is None:
            state = self._dests[dest] = _Destination(_Windows(self.limits.per_destination))
        (state.urgent if alert.urgent else state.normal).append(_Entry(alert))
        self._idle.clear()
        self._spawn(dest, state)

    def backlog(self, dest: Hashable | None = None) -> int:
        """Alerts waiting (for one destination, or everywhere), not counting those in flight."""
        if dest is not None:
            state = self._dests.get(dest)
            return len(state) if state else 0
        return sum(len(s) for s in self._dests.values())

    def _spawn(self, dest: Hashable, state: _Destination) -> None:
        if self._tasks is not None and state.worker is None and len(state):
            state.worker = self._tasks.create_task(self._work(dest, state))

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set, then for at most ``shutdown_grace`` seconds more."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for dest, state in self._dests.items():
                self._spawn(dest, state)
            await stop.wait()
            drained = asyncio.ensure_future(self._idle.wait())
            grace = asyncio.ensure_future(self.clock.sleep(self.limits.shutdown_grace))
            await asyncio.wait({drained, grace}, return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()
            grace.cancel()
            self._tasks = None
            for state in self._dests.values():
                if state.worker is not None:
                    state.worker.cancel()
        left = self.backlog()
        if left:
            log.warning(
                "%d alerts were not posted before shutdown; their mentions stay 'alerted' "
                "and 'pending' lists them",
                left,
            )

    async def drain(self) -> None:
        """Wait until every submitted alert has been posted (``run`` must be running)."""
        if not self._idle.is_set() and self._tasks is None:
            raise RuntimeError("Throttle.drain() needs run() to be running")
        await self._idle.wait()

    def _ready_at(self, state: _Destination, now: float) -> float:
        return max(
            state.windows.ready_at(now),
            state.paused_until,
            self._global.ready_at(now),
            self._global_paused_until,
        )

    def _pick(self, state: _Destination, now: float) -> tuple[list[_Entry], bool]:
        """What to send now: one entry, or a digest (True) of the oldest ones of one kind."""
        queue = state.urgent if state.urgent else state.normal
        capacity = state.windows.capacity(now, self.limits.digest_horizon, upto=len(queue))
        if len(queue) <= capacity:
            return [queue.popleft()], False
        size = min(self.limits.digest_size, len(queue))
        return [queue.popleft() for _ in range(size)], True

    async def _work(self, dest: Hashable, state: _Destination) -> None:
        try:
            while len(state):
                now = self.clock.now()
                ready = self._ready_at(state, now)
                if ready > now:
                    await self.clock.sleep(ready - now)
                    continue
                entries, digest = self._pick(state, now)
                state.windows.record(now)
                self._global.record(now)
                await self._send(dest, state, entries, digest)
        finally:
            state.worker = None
            self._check_idle()

    async def _send(
        self, dest: Hashable, state: _Destination, entries: list[_Entry], digest: bool
    ) -> None:
        self._in_flight += len(entries)
        try:
            if digest:
                await self.send_digest(dest, [e.alert for e in entries])
            else:
                await self.send_one(dest, entries[0].alert)
        except RateLimited as exc:
            until = self.clock.now() + exc.retry_after
            if exc.is_global:
                self._global_paused_until = max(self._global_paused_until, until)
            else:
                state.paused_until = max(state.paused_until, until)
            log.warning("posting to %r: %s; %d alerts will be re-sent", dest, exc, len(entries))
            state.requeue(entries)
        except asyncio.CancelledError:
            state.requeue(entries)  # shutdown mid-send: keep them (delivery unknown)
            raise
        except Exception as exc:
            log.warning("posting %d alerts to %r failed: %s", len(entries), dest, exc)
            for entry in entries:
                entry.attempts += 1
            kept = [e for e in entries if e.attempts < self.limits.max_attempts]
            for entry in entries:
                if entry.attempts >= self.limits.max_attempts:
                    self.on_give_up(dest, entry.alert, exc)
            state.requeue(kept)
            worst = max(e.attempts for e in entries)
            state.paused_until = self.clock.now() + min(MAX_BACKOFF, 2.0 ** (worst - 1))
        else:
            self.messages_sent += 1
            self.alerts_sent += len(entries)
        finally:
            self._in_flight -= len(entries)

    def _check_idle(self) -> None:
        if self._in_flight == 0 and self.backlog() == 0:
            self._idle.set()
