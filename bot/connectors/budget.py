"""A platform's rate-limit budget as its last response reported it, shared by the connectors
(each one reads its own headers): polling stops early to keep calls back for posting."""

from __future__ import annotations

import time


class RateBudget:
    """Calls left in the current window and when the window refills."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self._reset_at: float | None = None  # time.monotonic() when the window refills

    def record(self, remaining: int, reset_in: float | None) -> None:
        """Store what a response said: calls left, and seconds until the window refills."""
        self.remaining = remaining
        self._reset_at = None if reset_in is None else time.monotonic() + max(0.0, reset_in)

    def seconds_to_reset(self) -> float | None:
        """Seconds until the budget refills, if known."""
        if self._reset_at is None:
            return None
        return max(0.0, self._reset_at - time.monotonic())

    def below(self, reserve: int) -> bool:
        """True when at most ``reserve`` calls are left and the window has not reset yet."""
        if self.remaining is None or self.remaining > reserve:
            return False
        wait = self.seconds_to_reset()
        return wait is None or wait > 0
