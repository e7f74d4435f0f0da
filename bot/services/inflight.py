"""Counting calls in progress, so a caller can wait until none is (``Core.settle``).

A chat runs a review command in its own handler task, which no service queue sees: the command
table counts its runs with an :class:`InFlight`, so settling waits for a press that is being
handled (the drafts a button asked for, say) as it waits for the outbox or the event bus.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class InFlight:
    """How many calls are in progress; ``async with`` one around each call."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> None:
        self._count += 1
        self._idle.clear()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    @property
    def idle(self) -> bool:
        """Whether no call is in progress (what :meth:`drain` awaits)."""
        return self._idle.is_set()

    async def drain(self) -> None:
        """Wait until no call is in progress."""
        await self._idle.wait()
