"""The outgoing-alert throttle, over the real store's alert queue: limits kept (checked on send
timestamps), urgent first, digests for overflow, 429 pauses, retries and shutdown; nothing is
ever dropped, and only the alerts being sent are held in memory."""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field

import pytest

from bot.domain.models import Draft, Mention, Reply
from bot.pipeline.fingerprint import NO_FINGERPRINT
from bot.services.alert_delivery import AlertDelivery
from bot.services.throttle import (
    TELEGRAM_LIMITS,
    ChatUnreachable,
    GiveUp,
    OutgoingAlert,
    Rate,
    RateLimited,
    ThrottleLimits,
    log_give_up,
)
from bot.storage.mentions import NewMention
from bot.storage.store import Store
from tests.helpers import raw

FRONTEND = "chat"


class FakeClock:
    """Virtual time: advances to the next sleeper's deadline once the throttle has settled
    (every worker waits on the clock or for alerts; reading the store takes no virtual time)."""

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

    async def run_until(
        self,
        settled: Callable[[], Awaitable[None]],
        done: Callable[[], bool],
        limit: float = 10_000.0,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0  # real seconds; a fast run never comes close
        while True:
            await asyncio.wait_for(settled(), 60.0)
            for _ in range(5):  # a task just woken by a timer marks itself busy first
                await asyncio.sleep(0)
            if done():
                return
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)
            if not self._timers:  # finishing work off the clock (the last store reads)
                assert loop.time() < deadline, "nothing left to wait for, but not done"
                await asyncio.sleep(0.001)
                continue
            when, _, future = heapq.heappop(self._timers)
            assert when <= limit, "virtual time ran away"
            self.t = max(self.t, when)
            future.set_result(None)


@dataclass
class Chat:
    """Fake frontend adapter: records (time, destination, alerts, digest?) of every message.
    A destination is the brand's name (each test brand is its own chat)."""

    clock: FakeClock
    sent: list[tuple[float, Hashable, list[OutgoingAlert], bool]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    on_send: Callable[[], None] | None = None

    def route(self, brand: str) -> Hashable | None:
        return brand

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        await self._send(dest, [alert], False)
        return f"{dest}:{len(self.sent)}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        await self._send(dest, alerts, True)

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        pass

    async def notice(self, text: str) -> None:
        pass

    async def _send(self, dest: Hashable, alerts: list[OutgoingAlert], digest: bool) -> None:
        await asyncio.sleep(0)
        if self.on_send is not None:
            self.on_send()
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((self.clock.now(), dest, alerts, digest))

    def delivered(self, dest: Hashable | None = None) -> list[int]:
        """The numbers (external ids) of the alerts posted, in order."""
        return [
            int(a.mention.external_id)
            for _, d, alerts, _ in self.sent
            if dest in (None, d)
            for a in alerts
        ]


class Queue:
    """Mentions stored and queued for the fake chat, as the alerter does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue = store.alert_queue

    async def add(self, items: Iterable[tuple[int, str, bool]]) -> None:
        """Store mention ``number`` of brand ``dest`` and queue its alert, in this order."""
        news = [
            NewMention(
                raw=raw(str(number), f"mention {number}"),
                brand=dest,
                rule="product",
                urgent=urgent,
                canonical_url=None,
                fingerprint=NO_FINGERPRINT,
            )
            for number, dest, urgent in items
        ]
        await self.store.mentions.insert_batch(news, [])
        await self.queue.enqueue([FRONTEND], [(n.id, n.brand, n.urgent) for n in news])


def _delivery(
    store: Store,
    chat: Chat,
    limits: ThrottleLimits,
    clock: FakeClock | None = None,
    on_give_up: GiveUp = log_give_up,
) -> AlertDelivery:
    return AlertDelivery(store, FRONTEND, chat, limits, clock=clock, on_give_up=on_give_up)


def _assert_within(times: list[float], rate: Rate) -> None:
    for i, t in enumerate(times):
        window = [u for u in times[: i + 1] if u > t - rate.per + 1e-9]
        assert len(window) <= rate.count, f"{len(window)} sends in {rate.per}s at t={t}"


async def _run(delivery: AlertDelivery, clock: FakeClock, done: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    await clock.run_until(delivery.throttle.settled, done)
    stop.set()
    await clock.run_until(delivery.throttle.settled, task.done)
    await task


async def test_a_burst_of_200_keeps_telegram_limits_and_sends_urgent_first(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock)
    delivery = _delivery(store, chat, TELEGRAM_LIMITS, clock)
    urgent_ids = set(range(0, 200, 10))  # 20 urgent alerts scattered through the burst
    await Queue(store).add(
        (number, "odd" if number % 2 else "even", number in urgent_ids) for number in range(200)
    )
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 200)

    assert sorted(chat.delivered()) == list(range(200))  # every alert exactly once
    for dest in ("odd", "even"):
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
    # Chat "even" spends its first minute on its 20 urgent alerts, alone; its 80 normal ones
    # then go as 6 digests while more than a minute's worth waits, the last 20 alone. Chat "odd"
    # has 100 normal alerts: 8 digests, then 20 alone. 74 messages instead of 200, in ~2 minutes.
    assert len(chat.sent) == delivery.throttle.messages_sent == 74
    assert [d for _, d, _, digest in chat.sent if digest].count("even") == 6
    assert clock.now() == pytest.approx(125.0)
    assert await store.alert_queue.total(FRONTEND) == 0


async def test_only_overflow_is_digested_and_later_alerts_go_alone(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(5, 10.0),), digest_horizon=10.0, digest_size=3)
    delivery = _delivery(store, chat, limits, clock)
    await Queue(store).add((number, "c", False) for number in range(7))
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 7)
    # 7 > 5 slots: the 3 oldest go as a digest, then the 4 left fit in the 4 slots left.
    assert [(len(a), d) for _, _, a, d in chat.sent] == [(3, True)] + [(1, False)] * 4
    assert chat.delivered() == list(range(7))


async def test_urgent_alerts_are_digested_only_when_they_alone_overflow(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(2, 10.0),), digest_horizon=10.0, digest_size=4)
    delivery = _delivery(store, chat, limits, clock)
    await Queue(store).add([(1, "c", False), *((number, "c", True) for number in range(2, 7))])
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 6)
    assert [([int(a.mention.external_id) for a in alerts], d) for _, _, alerts, d in chat.sent] == [
        ([2, 3, 4, 5], True),  # 5 urgent > 2 slots: the 4 oldest urgent as one digest
        ([6], False),
        ([1], False),  # the normal alert waits for the next window
    ]
    assert chat.sent[2][0] == pytest.approx(10.0)


async def test_a_429_pauses_the_chat_and_resends_the_same_alert(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock, failures=[RateLimited(30.0)])
    limits = ThrottleLimits(per_destination=(Rate(100, 1.0),), global_limits=(Rate(100, 1.0),))
    delivery = _delivery(store, chat, limits, clock)
    await Queue(store).add([(1, "a", False), (2, "a", False), (3, "b", False)])
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 3)
    # Alert 1 got the 429 at t=0: chat a waits 30 s and sends it again, first; b is not held up.
    assert [(t, d, int(a[0].mention.external_id)) for t, d, a, _ in chat.sent] == [
        (0.0, "b", 3),
        (30.0, "a", 1),
        (30.0, "a", 2),
    ]
    assert sorted(chat.delivered()) == [1, 2, 3]


async def test_an_unreachable_chat_is_retried_without_a_warning_per_attempt(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    chat = Chat(clock, failures=[ChatUnreachable(5.0)] * 3)
    delivery = _delivery(store, chat, TELEGRAM_LIMITS, clock)
    await Queue(store).add([(1, "a", False)])
    with caplog.at_level(logging.DEBUG, logger="bot.services.throttle"):
        await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 1)
    # The frontend said once that the chat is gone; the throttle's retries stay at debug level.
    assert [(t, int(a[0].mention.external_id)) for t, _, a, _ in chat.sent] == [(15.0, 1)]
    retries = [r for r in caplog.records if "will be re-sent" in r.getMessage()]
    assert len(retries) == 3
    assert all(r.levelno == logging.DEBUG for r in retries)


async def test_a_global_429_pauses_every_chat(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock, failures=[RateLimited(5.0, is_global=True)])
    delivery = _delivery(store, chat, TELEGRAM_LIMITS, clock)
    await Queue(store).add((number, "ab"[number % 2], False) for number in range(4))
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 4)
    # Chat a's first alert got the 429 at t=0. Chat b's first message may have been on its way
    # already (then it is posted at t=0); after the 429 nothing goes anywhere for 5 s, and the
    # refused alert is sent again first, each chat keeping 1 message a second.
    sent = [(t, d, int(a[0].mention.external_id)) for t, d, a, _ in chat.sent]
    assert [n for _, d, n in sent if d == "a"] == [0, 2]
    assert [n for _, d, n in sent if d == "b"] == [1, 3]
    assert [t for t, d, _ in sent if d == "a"] == [5.0, 6.0]
    assert [t for t, d, _ in sent if d == "b"] in ([0.0, 5.0], [5.0, 6.0])


async def test_failures_back_off_and_a_poisonous_alert_is_given_up_after_max_attempts(
    store: Store,
) -> None:
    clock = FakeClock()
    boom = [RuntimeError("bad request")] * 2
    chat = Chat(clock, failures=[RuntimeError("timeout"), *boom])
    given_up: list[tuple[Hashable, int]] = []
    limits = ThrottleLimits(per_destination=(Rate(10, 1.0),), max_attempts=3)
    delivery = _delivery(
        store,
        chat,
        limits,
        clock,
        on_give_up=lambda dest, alert, exc: given_up.append((dest, int(alert.mention.external_id))),
    )
    await Queue(store).add([(1, "c", False), (2, "c", False)])
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent + len(given_up) == 2)
    # Alert 1 fails 3 times (1 s, 2 s back-off) and is given up; alert 2 then goes, after 4 s.
    assert given_up == [("c", 1)]
    assert [(t, int(a[0].mention.external_id)) for t, _, a, _ in chat.sent] == [(7.0, 2)]
    assert await store.alert_queue.total(FRONTEND) == 0


async def test_shutdown_stops_after_the_grace_period_and_keeps_the_rest(store: Store) -> None:
    clock = FakeClock()
    chat = Chat(clock)
    limits = ThrottleLimits(per_destination=(Rate(1, 1.0),), digest_horizon=0.5, shutdown_grace=2.5)
    delivery = _delivery(store, chat, limits, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    await Queue(store).add(
        [(1, "c", True), (2, "c", True), *((number, "c", False) for number in range(3, 40))]
    )
    delivery.wake()
    await clock.run_until(delivery.throttle.settled, lambda: delivery.throttle.messages_sent == 2)
    stop.set()
    await clock.run_until(delivery.throttle.settled, task.done)
    await task
    assert clock.now() == pytest.approx(3.5)  # stop at t=1, then 2.5 s of grace
    left = await store.alert_queue.total(FRONTEND)
    assert left + delivery.throttle.alerts_sent == 39  # nothing lost from the queue
    assert left > 0  # …and the rest waits in the store for the next start


async def test_drain_waits_for_every_alert_with_the_real_clock(store: Store) -> None:
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, int]] = []

    class Fast(Chat):
        async def _send(self, dest: Hashable, alerts: list[OutgoingAlert], digest: bool) -> None:
            sent.extend((loop.time(), int(a.mention.external_id)) for a in alerts)

    limits = ThrottleLimits(per_destination=(Rate(3, 0.1),), digest_horizon=0.1, digest_size=5)
    delivery = _delivery(store, Fast(FakeClock()), limits)
    with pytest.raises(RuntimeError, match="needs run"):
        await delivery.drain()
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    queue = Queue(store)
    for number in range(30):
        await queue.add([(number, "c", False)])
        delivery.wake()
    await asyncio.wait_for(delivery.drain(), timeout=30)
    stop.set()
    await task
    assert sorted(i for _, i in sent) == list(range(30))
    assert delivery.throttle.messages_sent <= 30


async def test_a_backlog_of_2000_against_a_slow_chat_holds_one_batch_in_memory(
    store: Store,
) -> None:
    clock = FakeClock()
    limits = TELEGRAM_LIMITS
    held: list[int] = []
    alive: list[int] = []
    chat = Chat(clock)

    def alerts_in_memory() -> int:
        return sum(isinstance(o, OutgoingAlert) for o in gc.get_objects())

    before = alerts_in_memory()  # left over by earlier tests in this process

    def count() -> None:
        held.append(delivery.held)
        if len(chat.sent) % 25 == 0:  # a full heap walk now and then
            recorded = sum(len(alerts) for _, _, alerts, _ in chat.sent)  # the fake chat's
            alive.append(alerts_in_memory() - recorded - before)

    chat.on_send = count
    delivery = _delivery(store, chat, limits, clock)
    queue = Queue(store)
    for start in range(0, 2_000, 500):
        await queue.add((number, "c", number % 97 == 0) for number in range(start, start + 500))
    await _run(delivery, clock, lambda: delivery.throttle.alerts_sent == 2_000)
    assert sorted(chat.delivered()) == list(range(2_000))
    assert max(held) <= limits.digest_size
    assert alive and max(alive) <= 2 * limits.digest_size  # the batch sent, and the one before
    assert len(chat.sent) < 250  # 20 a minute: the backlog went in digests of 10
