"""Retry-After parsing shared by the feed, LLM and connector clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.retry_after import parse_retry_after


@pytest.mark.parametrize(
    "value,expected",
    [("35", 35.0), (" 2.5 ", 2.5), ("-4", 0.0), ("", None), (None, None), ("soon", None),
     ("inf", None), ("nan", None)],
)  # fmt: skip
def test_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_http_dates_in_the_future_and_past() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    waited = parse_retry_after(later)
    assert waited is not None and 85 <= waited <= 90
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier) == 0.0
