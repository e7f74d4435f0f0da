"""How ``parley check --online`` asks services: verdict lines, and a runner for the checkers.

Each service has its own small checker (bot/services/online_telegram.py, online_discord.py,
online_llm.py, online_sources.py) returning :class:`Verdict` lines. :func:`run_checks` runs them
concurrently, each under a short timeout, and turns a network failure into one plain line
("cannot reach HOST: …; check the machine's internet connection"), never a traceback.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bot.errors import ConfigError, CredentialsRejected, ParleyError

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds each service gets to answer all of its questions."""

EX_REFUSED = 78
"""Exit status when a service refused the configuration (sysexits.h EX_CONFIG)."""


class Outcome(enum.Enum):
    """How one question ended."""

    OK = "ok"
    REFUSED = "refused"
    """The service answered no: a token, an id or a permission must change."""
    UNREACHABLE = "unreachable"
    """No answer: the network, the address, or the server is down."""
    SKIPPED = "skipped"
    """Nothing to ask (no credentials), not a failure."""

    @property
    def mark(self) -> str:
        """The sign that opens the line."""
        return {"ok": "✔", "skipped": "·"}.get(self.value, "✘")


@dataclass(frozen=True)
class Verdict:
    """One line of the report: which service, how it went, and what to do."""

    service: str
    outcome: Outcome
    detail: str

    @property
    def line(self) -> str:
        """The line shown to the user."""
        return f"{self.outcome.mark} {self.service}: {self.detail}"


def ok(service: str, detail: str) -> Verdict:
    """A question the service answered yes."""
    return Verdict(service, Outcome.OK, detail)


def refused(service: str, detail: str) -> Verdict:
    """A question the service answered no; ``detail`` says what to do."""
    return Verdict(service, Outcome.REFUSED, detail)


def skipped(service: str, detail: str) -> Verdict:
    """A service with nothing to ask."""
    return Verdict(service, Outcome.SKIPPED, detail)


@dataclass(frozen=True)
class Check:
    """One service's checker: its name, the address it talks to, and the questions."""

    service: str
    url: str
    run: Callable[[httpx.AsyncClient], Awaitable[list[Verdict]]]


async def run_checks(checks: Sequence[Check], *, seconds: float = TIMEOUT) -> list[Verdict]:
    """Every check's verdicts, in the order given; the checks run concurrently."""
    async with httpx.AsyncClient(timeout=seconds) as http:
        results = await asyncio.gather(*(_guarded(check, http, seconds) for check in checks))
    return [verdict for verdicts in results for verdict in verdicts]


async def _guarded(check: Check, http: httpx.AsyncClient, seconds: float) -> list[Verdict]:
    """The check's verdicts, or one line saying why it could not be asked."""
    host = urlsplit(check.url).netloc or check.url
    try:
        async with asyncio.timeout(seconds):
            return await check.run(http)
    except (TimeoutError, httpx.TimeoutException):
        detail = f"no answer from {host} within {seconds:g} s; check the machine's internet "
        detail += "connection and that the server is up"
    except httpx.TransportError as exc:
        reason = _reason(exc)
        advice = (
            "check that the server is running and the address"
            if reason == "connection refused"
            else "check the machine's internet connection and the address"
        )
        detail = f"cannot reach {host}: {reason}; {advice}"
    except CredentialsRejected as exc:
        return [refused(check.service, str(exc))]
    except ConfigError as exc:
        return [refused(check.service, "; ".join(exc.problems))]
    except ParleyError as exc:
        detail = str(exc)
    except Exception as exc:  # one line per service, whatever went wrong: never a traceback
        log.debug("online check of %s failed", check.service, exc_info=True)
        detail = f"unexpected answer from {host} ({type(exc).__name__}); try again later"
    return [Verdict(check.service, Outcome.UNREACHABLE, detail)]


def _reason(exc: httpx.TransportError) -> str:
    """The transport failure in words: the operating system's reason when there is one."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "the name does not resolve"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def exit_status(verdicts: Sequence[Verdict]) -> int:
    """0 when nothing failed; 78 when a service refused the configuration; else 1."""
    outcomes = {v.outcome for v in verdicts}
    if Outcome.REFUSED in outcomes:
        return EX_REFUSED
    return 1 if Outcome.UNREACHABLE in outcomes else 0
