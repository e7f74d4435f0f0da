"""Staying connected to a chat: back-off between attempts and a note of each outage.

A chat frontend that cannot reach its platform (at start, or later) keeps trying with
:class:`Backoff` (2 s doubling to 5 min, with jitter) while the rest of Parley runs on, and
records the outage in :class:`Outage`; when the chat is back, the team hears it once, with
:func:`back_notice`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable


def _one_line(record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[1] is not None:
        record.msg = f"{record.getMessage()} ({record.exc_info[1]})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True


def one_line_errors(logger: str) -> None:
    """A chat library logs every failed attempt with a traceback: keep the line and the
    error's own message only (installed once per logger)."""
    target = logging.getLogger(logger)
    if _one_line not in target.filters:
        target.addFilter(_one_line)


FIRST_DELAY = 2.0
LONGEST_DELAY = 300.0


class Backoff:
    """Delays between attempts: ``first`` doubling up to ``longest``, each ±20 % at random."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        longest: float = LONGEST_DELAY,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.longest = longest
        self.jitter = jitter
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (one more failure counted)."""
        base = min(self.longest, self.first * 2.0**self.failures)
        self.failures += 1
        return base * (0.8 + 0.4 * self.jitter())

    def reset(self) -> None:
        """An attempt succeeded: start again from ``first``."""
        self.failures = 0


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; True if it was."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def duration(seconds: float) -> str:
    """``seconds`` in words a team reads at a glance: '40 s', '3 min', '2 h 5 min'."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def back_notice(platform: str, seconds: float, queued: int) -> str:
    """What the chat is told when it can be reached again."""
    text = f"Parley is back in touch after {duration(seconds)} without {platform}"
    if queued:
        many = queued != 1
        text += f"; {queued} alert{'s' if many else ''} queued meanwhile {'are' if many else 'is'}"
        text += " being sent"
    return text + "."


class Outage:
    """Whether a platform is unreachable, since when; ``changed`` is set on every transition."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since: float | None = None
        self.changed = asyncio.Event()

    @property
    def down(self) -> bool:
        """Whether the platform is unreachable right now."""
        return self.since is not None

    def lost(self) -> bool:
        """The platform could not be reached; True if it could until now."""
        if self.since is not None:
            return False
        self.since = self.clock()
        self.changed.set()
        return True

    def regained(self) -> float | None:
        """The platform answered again; how long it was unreachable (None if it was not)."""
        if self.since is None:
            return None
        lasted = self.clock() - self.since
        self.since = None
        self.changed.set()
        return lasted


HELD_NOTICES = 20
"""Notices kept for a chat that cannot be reached; beyond, the oldest are dropped."""


class HeldNotices:
    """Notices (a failing source…) that came while the chat could not be reached, shown once it
    can (only the latest :data:`HELD_NOTICES`; a stop loses them, and the log has each)."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self._texts: deque[str] = deque(maxlen=HELD_NOTICES)

    def hold(self, text: str) -> None:
        """Keep ``text`` for the next connection."""
        logging.getLogger(__name__).info("held until %s is reachable: %s", self.platform, text)
        self._texts.append(text)

    async def show(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send the held notices, oldest first; one that fails stays (``send`` raises)."""
        while self._texts:
            await send(self._texts[0])
            self._texts.popleft()
