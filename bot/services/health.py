"""Source health as people read it: one line per source, the same in every frontend and in
``parley status`` (last success, last error, items fetched, rate-limit budget left, and a plain
word when a credential was refused), then one line on the language model when one was used
(answering or not, since when, last error, calls and failures). Times are in
``PARLEY_TIMEZONE`` (bot/localtime.py)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.localtime import clock, stamp
from bot.storage.llm_health import LlmHealth
from bot.storage.source_health import SourceStatus
from bot.storage.store import Store


def describe(status: SourceStatus) -> str:
    """One line on a source's health, starting with ✔, ✘ or … ."""
    facts = [f"{status.items_seen} items fetched"]
    if status.rate_limit_remaining is not None:
        facts.append(f"rate-limit budget left: {status.rate_limit_remaining}")
    if status.last_ok_at is not None:
        facts.append(f"last success {stamp(status.last_ok_at)}")
    if status.consecutive_failures:
        since = f" since {clock(status.last_error_at)}" if status.last_error_at else ""
        what = "credentials rejected" if status.credentials_rejected else "failing"
        return (
            f"✘ {status.source}: {what} ({status.consecutive_failures} in a row{since}): "
            f"{status.last_error}; " + ", ".join(facts)
        )
    if status.last_ok_at is None:
        return f"… {status.source}: not polled yet"
    return f"✔ {status.source}: ok; " + ", ".join(facts)


def describe_llm(health: LlmHealth) -> str:
    """One line on the language model's health, starting with ✔, ✘ or … ."""
    counts = f"{health.calls} calls, {health.failures} failed"
    if health.state == "closed":
        line = f"✔ LLM at {health.endpoint}: answering; {counts}"
        if health.last_error and health.last_error_at:
            line += f"; last error {stamp(health.last_error_at)}: {health.last_error}"
        return line
    down = (
        f"LLM at {health.endpoint}: not answering since {stamp(health.since)} "
        f"({health.last_error}); drafts from templates, triage by rules"
    )
    if health.state == "open" and health.retry_at is not None:
        return f"✘ {down}; next try {clock(health.retry_at)}; {counts}"
    return f"… {down}; trying it again now; {counts}"


async def health_lines(store: Store, sources: Iterable[str] | None = None) -> list[str]:
    """Health of the named sources (configured ones), or of every source ever polled, then
    the language model's when one was used."""
    if sources is None:
        statuses = await store.sources.all()
    else:
        statuses = [await store.sources.status(name) for name in sources]
    lines = [describe(s) for s in statuses]
    llm = await store.llm_health.load()
    if llm is not None:
        lines.append(describe_llm(llm))
    return lines
