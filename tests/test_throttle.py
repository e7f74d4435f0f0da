"""The outgoing-alert throttle: limits kept (checked on send timestamps), urgent first, digests
for overflow, 429 pauses, retries and shutdown; nothing is ever dropped."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import pytest

from bot.domain.models import Author, Mention, utcnow
from bot.domain.states import MentionState
from bot.events import MentionAlert
from bot.services.throttle import (
    TELEGRAM_LIMITS,
    OutgoingAlert,
    Rate,
    RateLimited,
    Throttle,
    ThrottleLimits,
)


class FakeClock:
    """Virtual time: advances to the next sleeper's deadline once every task is idle."""

    def __init__(self) -> None:
        self.t = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.t + max(0.0, seconds), next(self._seq), future))
        await future

    async def run_until(self, done: Callable[[], bool], limit: float = 10_000.0) -> None:
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            if done():
                return
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)
            assert self._timers, "nothing left to wait for, but not done"
            deadline, _, future = heapq.heappop(self._timers)
            assert deadline <= limit, "virtual time ran away"
            self.t = max(self.t, deadline)
            future.set_result(None)


def _alert(number: int, *, urgent: bool = False) -> OutgoingAlert:
    mention = Mention(
        id=number,
        source="feed",
        platform="rss",
        external_id=str(number),
        url=None,
        canonical_url=None,
        author=Author(handle="someone"),
        title=None,
        text=f"mention {number}",
        language="en",
        created_at=None,
        fetched_at=utcnow(),
        brand="acme",
        rule="product",
        state=MentionState.DRAFTED,
        urgent=urgent,
    )
    return OutgoingAlert.from_event(MentionAlert(mention))


@dataclass
class Chat:
    """Fake frontend: records (time, destination, alerts, digest?) of every message."""

    clock: FakeClock
    sent: list[tuple[float, Hashable, list[OutgoingAlert], bool]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    async def send_one(self, dest: Hashable, alert: OutgoingAlert) -> None:
        await self._send(dest, [alert], False)

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        await self._send(dest, alerts, True)

    async def _send(self, dest: Hashable, alerts: list[OutgoingAlert], digest: bool) -> None:
        await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((self.clock.now(), dest, alerts, digest))

    def delivered(self, dest: Hashable | None = None) -> list[int]:
        return [a.mention.id for _, d, alerts, _ in self.sent if dest in (None, d) for a in alerts]


def _assert_within(times: list[float], rate: Rate) -> None:
    for i, t in enumerate(times):
        window = [u for u in times[: i + 1] if u > t - rate.per + 1e-9]
        assert len(window) <= rate.count, f"{len(window)} sends in {rate.per}s at t={t}"


async def _run(
    throttle: Throttle, clock: FakeClock, done: Callable[[], bool]
) -> asyncio.Task[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(throttle.run(stop))
    await clock.run_until(done)
    stop.set()
    await clock.run_until(task.done)
    await task
    return task


async def test_a_burst_of_200_keeps_telegram_limits_and_sends_urgent_first() -> None:
    clock = FakeClock()
    chat = Chat(clock)
    throttle = Throttle(chat.send_one, chat.send_digest, TELEGRAM_LIMITS, clock=clock)
    urgent_ids = set(range(0, 200, 10))  # 20 urgent alerts scattered through the burst
    for number in range(200):
        throttle.submit(-100 if number % 2 else -200, _alert(number, urgent=number in urgent_ids))
    await _run(throttle, clock, lambda: throttle.alerts_sent == 200)

    assert sorted(chat.delivered()) == list(range(200))  # every alert exactly once
    for dest in (-100, -200):
        times = [t for t, d, _, _ in chat.sent if d == dest]
        for rate in TELEGRAM_LIMITS.per_destination:
            _assert_within(times, rate)
        messages = [(alerts, digest) for _, d, alerts, digest in chat.sent if d == dest]
        kinds = [alerts[0].urgent for alerts, _ in messages]
        assert kinds == sorted(kinds, reverse=True)  # every urgent message before any normal one
        for alerts, digest in messages:
            assert len({a.urgent for a in alerts}) == 1  # never mixed
            assert (len(alerts) > 1) == digest and len(alerts) <= 10
            if alerts[0].urgent:
                assert not digest  # 10 urgent per chat fit in the next minute: sent alone
    _assert_within([t for t, *_ in chat.sent], TELEGRAM_LIMITS.global_limits[0])
    # Chat -200 spends its first minute on its 20 urgent alerts, alone; its 80 normal ones then
    # go as 6 digests while more than a minute's worth waits, the last 20 alone. Chat -100 has 100
    # normal alerts: 8 digests, then 20 alone. 74 messages instead of 200, done in ~2 minutes.
    assert len(chat.sent) == throttle.messages_sent == 74
    assert [d for _, d, _, digest in chat.sent if digest].count(-200) == 6
    assert clock.now() == pytest.approx(125.0)
    assert throttle.backlog() == 0


async def test_only_overflow_is_digested_and_later_alerts_go_alone() -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(5, 10.0),), digest_horizon=10.0, digest_size=3)
    throttle = Throttle(chat.send_one, chat.send_digest, limits, clock=clock)
    for number in range(7):
        throttle.submit("c", _alert(number))
    await _run(throttle, clock, lambda: throttle.alerts_sent == 7)
    # 7 > 5 slots: the 3 oldest go as a digest, then the 4 left fit in the 4 slots left.
    assert [(len(a), d) for _, _, a, d in chat.sent] == [(3, True)] + [(1, False)] * 4
    assert chat.delivered() == list(range(7))


async def test_urgent_alerts_are_digested_only_when_they_alone_overflow() -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(2, 10.0),), digest_horizon=10.0, digest_size=4)
    throttle = Throttle(chat.send_one, chat.send_digest, limits, clock=clock)
    throttle.submit("c", _alert(1))
    for number in range(2, 7):
        throttle.submit("c", _alert(number, urgent=True))
    await _run(throttle, clock, lambda: throttle.alerts_sent == 6)
    assert [([a.mention.id for a in alerts], d) for _, _, alerts, d in chat.sent] == [
        ([2, 3, 4, 5], True),  # 5 urgent > 2 slots: the 4 oldest urgent as one digest
        ([6], False),
        ([1], False),  # the normal alert waits for the next window
    ]
    assert chat.sent[2][0] == pytest.approx(10.0)


async def test_a_429_pauses_the_chat_and_resends_the_same_alert() -> None:
    clock = FakeClock()
    chat = Chat(clock, failures=[RateLimited(30.0)])
    limits = ThrottleLimits(per_destination=(Rate(100, 1.0),), global_limits=(Rate(100, 1.0),))
    throttle = Throttle(chat.send_one, chat.send_digest, limits, clock=clock)
    throttle.submit("a", _alert(1))
    throttle.submit("a", _alert(2))
    throttle.submit("b", _alert(3))
    await _run(throttle, clock, lambda: throttle.alerts_sent == 3)
    # Alert 1 got the 429 at t=0: chat a waits 30 s and sends it again, first; b is not held up.
    assert [(t, d, a[0].mention.id) for t, d, a, _ in chat.sent] == [
        (0.0, "b", 3),
        (30.0, "a", 1),
        (30.0, "a", 2),
    ]
    assert sorted(chat.delivered()) == [1, 2, 3]


async def test_a_global_429_pauses_every_chat() -> None:
    clock = FakeClock()
    chat = Chat(clock, failures=[RateLimited(5.0, is_global=True)])
    throttle = Throttle(chat.send_one, chat.send_digest, TELEGRAM_LIMITS, clock=clock)
    for number in range(4):
        throttle.submit("ab"[number % 2], _alert(number))
    await _run(throttle, clock, lambda: throttle.alerts_sent == 4)
    # Chat b's first message was already on its way when a's 429 came back; after it, nothing
    # goes anywhere for 5 s, and a's alert 0 is sent again first.
    assert [(t, d, a[0].mention.id) for t, d, a, _ in chat.sent] == [
        (0.0, "b", 1),
        (5.0, "a", 0),
        (5.0, "b", 3),
        (6.0, "a", 2),
    ]


async def test_failures_back_off_and_a_poisonous_alert_is_given_up_after_max_attempts() -> None:
    clock = FakeClock()
    boom = [RuntimeError("bad request")] * 2
    chat = Chat(clock, failures=[RuntimeError("timeout"), *boom])
    given_up: list[tuple[Hashable, int]] = []
    limits = ThrottleLimits(per_destination=(Rate(10, 1.0),), max_attempts=3)
    throttle = Throttle(
        chat.send_one,
        chat.send_digest,
        limits,
        clock=clock,
        on_give_up=lambda dest, alert, exc: given_up.append((dest, alert.mention.id)),
    )
    throttle.submit("c", _alert(1))
    throttle.submit("c", _alert(2))
    await _run(throttle, clock, lambda: throttle.alerts_sent + len(given_up) == 2)
    # Alert 1 fails 3 times (1 s, 2 s back-off) and is given up; alert 2 then goes, after 4 s.
    assert given_up == [("c", 1)]
    assert [(t, a[0].mention.id) for t, _, a, _ in chat.sent] == [(7.0, 2)]


async def test_shutdown_stops_after_the_grace_period_and_keeps_the_rest() -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(1, 1.0),), digest_horizon=0.5, shutdown_grace=2.5)
    throttle = Throttle(chat.send_one, chat.send_digest, limits, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(throttle.run(stop))
    for _ in range(3):
        await asyncio.sleep(0)
    throttle.submit("c", _alert(1, urgent=True))
    throttle.submit("c", _alert(2, urgent=True))
    for number in range(3, 40):
        throttle.submit("c", _alert(number))
    await clock.run_until(lambda: throttle.messages_sent == 2)
    stop.set()
    await clock.run_until(task.done)
    await task
    assert clock.now() == pytest.approx(3.5)  # stop at t=1, then 2.5 s of grace
    assert throttle.backlog("c") + throttle.alerts_sent == 39  # nothing lost from the queue
    assert throttle.backlog("c") > 0


async def test_drain_waits_for_every_alert_with_the_real_clock() -> None:
    sent: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()

    async def send_one(dest: Hashable, alert: OutgoingAlert) -> None:
        sent.append((loop.time(), alert.mention.id))

    async def send_digest(dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        sent.extend((loop.time(), a.mention.id) for a in alerts)

    limits = ThrottleLimits(per_destination=(Rate(3, 0.1),), digest_horizon=0.1, digest_size=5)
    throttle = Throttle(send_one, send_digest, limits)
    with pytest.raises(RuntimeError, match="needs run"):
        throttle.submit("c", _alert(0))
        await throttle.drain()
    stop = asyncio.Event()
    task = asyncio.create_task(throttle.run(stop))
    for number in range(1, 30):
        throttle.submit("c", _alert(number))
    await asyncio.wait_for(throttle.drain(), timeout=5)
    stop.set()
    await task
    assert sorted(i for _, i in sent) == list(range(30))
    assert throttle.messages_sent <= 12
