"""A platform's rate-limit budget as its last response reported it, shared by the connectors
(each one reads its own headers): polling stops early to keep calls back for posting."""

from __future__ import annotations

import time

import httpx

from bot.retry_after import parse_retry_after

ASSUMED_WINDOW = 300.0
"""Seconds a window is assumed to last when the platform does not say when it refills: polling
that stopped to save calls must start again some time (it sends nothing meanwhile)."""


class RateBudget:
    """Calls left in the current window and when the window refills."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self._reset_at: float | None = None  # time.monotonic() when the window refills
        self._reset_known = False

    def record(self, remaining: int, reset_in: float | None) -> None:
        """Store what a response said: calls left, and seconds until the window refills
        (unknown: assumed to be :data:`ASSUMED_WINDOW`)."""
        self.remaining = remaining
        self._reset_known = reset_in is not None
        wait = ASSUMED_WINDOW if reset_in is None else max(0.0, reset_in)
        self._reset_at = time.monotonic() + wait

    def seconds_to_reset(self) -> float | None:
        """Seconds until the budget refills, if the platform said."""
        if self._reset_at is None or not self._reset_known:
            return None
        return max(0.0, self._reset_at - time.monotonic())

    def retry_after(self, response: httpx.Response) -> float | None:
        """How long a 429 asks to wait: its Retry-After header, else until the window refills."""
        value = parse_retry_after(response.headers.get("retry-after"))
        return value if value is not None else self.seconds_to_reset()

    def below(self, reserve: int) -> bool:
        """True when at most ``reserve`` calls are left and the window has not refilled yet."""
        if self.remaining is None or self.remaining > reserve or self._reset_at is None:
            return False
        return time.monotonic() < self._reset_at
