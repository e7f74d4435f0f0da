"""The event bus stays bounded for a slow subscriber: changes coalesce by mention (latest wins),
alerts and notices beyond their limits drop the oldest, and order is kept."""

from __future__ import annotations

import asyncio

from bot.domain.models import SYSTEM, Author, Mention, utcnow
from bot.domain.states import MentionState
from bot.events import Event, EventBus, InboxLimits, MentionAlert, MentionChanged, Notice


def _mention(number: int, duplicates: int = 0) -> Mention:
    return Mention(
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
        state=MentionState.ALERTED,
        duplicates=duplicates,
    )


def _change(number: int, duplicates: int) -> MentionChanged:
    return MentionChanged(_mention(number, duplicates), [], None, SYSTEM, "duplicate")


class Slow:
    """A subscriber that handles nothing until released, then records what it got."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[Event] = []

    async def handle(self, event: Event) -> None:
        await self.release.wait()
        self.seen.append(event)


async def _deliver(bus: EventBus, slow: Slow) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(bus.run(stop))
    slow.release.set()
    await asyncio.wait_for(bus.drain(), 30)
    stop.set()
    await task


async def test_a_flood_of_changes_coalesces_by_mention_and_latest_wins() -> None:
    bus = EventBus()
    slow = Slow()
    bus.subscribe("slow", slow.handle)
    for duplicates in range(1, 10_001):
        bus.publish(_change(duplicates % 3, duplicates))
    assert bus.waiting("slow") == 3  # one per mention, however many changes
    assert bus.dropped("slow") == 0
    await _deliver(bus, slow)
    assert [(e.mention.id, e.mention.duplicates) for e in slow.seen] == [  # type: ignore[union-attr]
        (2, 9_998),
        (0, 9_999),
        (1, 10_000),
    ]


async def test_limits_drop_the_oldest_and_keep_the_order_of_what_is_left() -> None:
    bus = EventBus(InboxLimits(max_alerts=3, max_changes=2, max_notices=1))
    slow = Slow()
    bus.subscribe("slow", slow.handle)
    bus.subscribe("console", slow.handle, coalesce=False)
    for number in range(1, 1_001):
        bus.publish(MentionAlert(_mention(number)))
        bus.publish(_change(number, 1))
        bus.publish(Notice(f"notice {number}"))
    assert bus.waiting("slow") == bus.waiting("console") == 6
    assert bus.dropped("slow") == 3 * 1_000 - 6
    await _deliver(bus, slow)
    kinds = [
        (type(e).__name__, e.text if isinstance(e, Notice) else e.mention.id) for e in slow.seen
    ]
    assert kinds[:6] == [
        ("MentionAlert", 998),
        ("MentionAlert", 999),
        ("MentionChanged", 999),
        ("MentionAlert", 1000),
        ("MentionChanged", 1000),
        ("Notice", "notice 1000"),
    ]


async def test_the_console_sees_every_change_of_a_mention() -> None:
    bus = EventBus()
    slow = Slow()
    bus.subscribe("console", slow.handle, coalesce=False)
    for duplicates in (1, 2, 3):
        bus.publish(_change(7, duplicates))
    await _deliver(bus, slow)
    assert [e.mention.duplicates for e in slow.seen] == [1, 2, 3]  # type: ignore[union-attr]


async def test_a_chat_frontend_gets_no_alert_events_its_delivery_reads_the_store() -> None:
    bus = EventBus()
    slow = Slow()
    bus.subscribe("telegram", slow.handle, alerts=False)
    for number in range(1, 1_001):
        bus.publish(MentionAlert(_mention(number)))
    bus.publish(_change(7, 1))
    assert bus.waiting("telegram") == 1 and bus.dropped("telegram") == 0
    await _deliver(bus, slow)
    assert [type(e).__name__ for e in slow.seen] == ["MentionChanged"]
