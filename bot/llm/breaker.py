"""The circuit breaker the LLM client consults before every request, shared by drafting and
triage.

- **Closed**: requests go to the model. ``threshold`` consecutive requests that got no answer
  (connection refused, timeout) or a 5xx open the breaker. Any answer from the server (a 400
  for one bad prompt, a 429 asking to slow down, a success) resets the count.
- **Open**: no request is sent for ``cooldown`` seconds; callers get :class:`LlmPaused` at
  once, so drafts come from the templates and triage from the rules without waiting.
- **Half-open**: after the cool-down, the next request is a single probe (others still get
  :class:`LlmPaused`). If it is answered, the breaker closes and the cool-down resets; if not,
  it opens again for twice as long, up to ``max_cooldown``.

Transitions are returned to the caller (the client), which tells the team once when the model
stops answering and once when it is back. Time comes from an injectable monotonic ``clock``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.models import utcnow
from bot.errors import LLMError
from bot.storage.llm_health import LlmHealth

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class Transition(enum.Enum):
    """A change of state the team should hear about."""

    OPENED = "opened"
    RECOVERED = "recovered"


class LlmPaused(LLMError):
    """The breaker is open: no request was sent (the message says why and until when)."""


@dataclass(frozen=True)
class BreakerPolicy:
    """When to open and for how long."""

    threshold: int = 3
    cooldown: float = 60.0
    max_cooldown: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("a breaker needs threshold ≥ 1 and 0 < cooldown ≤ max_cooldown")


class Breaker:
    """State, counters and timing of one LLM endpoint (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.state = CLOSED
        self.since = utcnow()
        self.calls = 0
        self.failures = 0
        self.consecutive = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._cooldown = self.policy.cooldown
        self._reopen_at = 0.0
        self._probing = False

    @property
    def available(self) -> bool:
        """Whether a request may go now (closed, or a probe is due), without reserving it."""
        if self.state == CLOSED:
            return True
        return not self._probing and self.clock() >= self._reopen_at

    def acquire(self) -> bool:
        """Reserve a request: raises :class:`LlmPaused` while open or while the probe runs.
        The first request after the cool-down is the probe: then True is returned, to be
        passed back to :meth:`succeeded`, :meth:`failed` or :meth:`release`."""
        probe = False
        if self.state != CLOSED:
            if not self.available:
                raise self.paused()
            self._set_state(HALF_OPEN)
            self._probing = probe = True
        self.calls += 1
        return probe

    def release(self, probe: bool) -> None:
        """The reserved request ended with no verdict (cancelled, or not an HTTP error)."""
        if probe:
            self._probing = False

    def succeeded(self, probe: bool) -> Transition | None:
        """The server answered (any HTTP status but 5xx)."""
        self.release(probe)
        self.consecutive = 0
        if self.state == CLOSED:
            return None
        self._set_state(CLOSED)
        self._cooldown = self.policy.cooldown
        return Transition.RECOVERED

    def failed(self, reason: str, probe: bool) -> Transition | None:
        """The server did not answer, or answered 5xx; ``reason`` is a few plain words."""
        self.failures += 1
        self.consecutive += 1
        self.last_error = reason
        self.last_error_at = utcnow()
        if probe and self.state == HALF_OPEN:
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown)
            self._open()
            return None
        if self.state == CLOSED and self.consecutive >= self.policy.threshold:
            self._open()
            return Transition.OPENED
        return None

    def paused(self) -> LlmPaused:
        """The error for a request refused while open."""
        wait = max(0.0, self._reopen_at - self.clock())
        return LlmPaused(
            f"the language model at {self.endpoint} is not answering ({self.last_error}); "
            f"next try in {wait:.0f} s"
        )

    def snapshot(self) -> LlmHealth:
        """The health to store and show."""
        retry_at = None
        if self.state == OPEN:
            retry_at = utcnow() + timedelta(seconds=max(0.0, self._reopen_at - self.clock()))
        return LlmHealth(
            state=self.state,
            endpoint=self.endpoint,
            since=self.since,
            calls=self.calls,
            failures=self.failures,
            consecutive_failures=self.consecutive,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            retry_at=retry_at,
        )

    def _open(self) -> None:
        self._set_state(OPEN)
        self._reopen_at = self.clock() + self._cooldown

    def _set_state(self, state: str) -> None:
        # ``since`` is when the model went down or came back: a failed probe does not move it.
        if (state == CLOSED) != (self.state == CLOSED):
            self.since = utcnow()
        self.state = state
