"""One log line per handled 429 from the chat libraries, never a library traceback.

Parley handles both libraries' rate limits itself: a 429 becomes ``RateLimited`` and the alert
throttle pauses the chat and logs one warning. Left alone, the libraries log the same 429 again:

- python-telegram-bot's ``AIORateLimiter`` (run with ``max_retries=0`` so the 429 reaches Parley)
  logs "Rate limit hit after maximum of 0 retries" at ERROR with the whole traceback;
- discord.py logs "Timeout of … was too long, erroring instead" before raising
  ``discord.RateLimited``, which Parley then reports.

:func:`quiet_handled_rate_limits` drops exactly those two records. discord.py's "Retrying in …"
warning stays: there the library waits itself, and that line is the only one. It also silences
PTB 22's deprecation warning about the type of ``RetryAfter.retry_after``, which every 429
triggers when PTB builds the error: Parley reads either type (``retry_seconds``).
"""

from __future__ import annotations

import logging
import re
import warnings

from telegram.warnings import PTBDeprecationWarning

HANDLED: dict[str, re.Pattern[str]] = {
    "telegram.ext.AIORateLimiter": re.compile(r"Rate limit hit after maximum of \d+ retries"),
    "discord.http": re.compile(
        r"We are being rate limited\. .* responded with 429\. Timeout of .* erroring instead"
    ),
}
"""Logger name → the messages Parley reports itself, as formatted (the Telegram frontend's token
redactor formats every record before any filter sees it)."""
RETRY_AFTER_DEPRECATION = r"Deprecated since version v22\.2: .* attribute `retry_after`"
"""PTB's warning, as a regular expression (pyproject's test filter matches the same text)."""


class _HandledElsewhere(logging.Filter):
    """Drops records whose message matches ``pattern`` from its start."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a rate-limit record Parley logs in its own words."""
        try:
            return self.pattern.match(record.getMessage()) is None
        except (TypeError, ValueError):  # a malformed record: logging reports it itself
            return True


def quiet_handled_rate_limits() -> None:
    """Install the filters (once; calling again changes nothing)."""
    warnings.filterwarnings("ignore", RETRY_AFTER_DEPRECATION, PTBDeprecationWarning)
    for name, pattern in HANDLED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HandledElsewhere) for f in logger.filters):
            logger.addFilter(_HandledElsewhere(pattern))
