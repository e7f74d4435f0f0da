"""Back-off between connection attempts and the words of the 'back in touch' notice."""

from __future__ import annotations

import pytest

from bot.services.reconnect import (
    HELD_NOTICES,
    Backoff,
    HeldNotices,
    Outage,
    back_notice,
    duration,
)


def test_backoff_doubles_from_2_s_to_5_min_with_jitter_and_restarts_after_a_success() -> None:
    middle = Backoff(jitter=lambda: 0.5)
    assert [round(middle.next()) for _ in range(10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    middle.reset()
    assert middle.next() == 2.0
    low, high = Backoff(jitter=lambda: 0.0), Backoff(jitter=lambda: 1.0)
    assert (low.next(), high.next()) == pytest.approx((1.6, 2.4))  # ±20 %


def test_an_outage_is_counted_once_and_ends_once() -> None:
    now = [100.0]
    outage = Outage(clock=lambda: now[0])
    assert outage.regained() is None  # it was never down
    assert outage.lost() and not outage.lost()
    now[0] = 280.0
    assert outage.regained() == 180.0
    assert outage.regained() is None and not outage.down


def test_the_notice_reads_well() -> None:
    assert duration(0.2) == "1 s" and duration(40) == "40 s" and duration(185) == "3 min"
    assert duration(3600) == "1 h" and duration(7300) == "2 h 2 min"
    assert back_notice("Telegram", 185, 4) == (
        "Parley is back in touch after 3 min without Telegram; "
        "4 alerts queued meanwhile are being sent."
    )
    assert back_notice("Discord", 40, 1).endswith("; 1 alert queued meanwhile is being sent.")
    assert back_notice("Discord", 40, 0) == "Parley is back in touch after 40 s without Discord."


async def test_held_notices_are_shown_oldest_first_and_one_that_fails_stays() -> None:
    held = HeldNotices("Telegram")
    for i in range(HELD_NOTICES + 2):
        held.hold(f"notice {i}")
    shown: list[str] = []

    async def flaky(text: str) -> None:
        if len(shown) == 3:
            raise OSError("network down")
        shown.append(text)

    with pytest.raises(OSError):
        await held.show(flaky)
    assert shown == ["notice 2", "notice 3", "notice 4"]  # the two oldest were dropped
    shown.append("(the network is back)")
    await held.show(flaky)
    assert shown[4] == "notice 5" and shown[-1] == f"notice {HELD_NOTICES + 1}"
