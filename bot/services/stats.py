"""Quick numbers for leads: volume, mix, response time and the queue over a period."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.models import utcnow
from bot.domain.states import ReplyState
from bot.errors import UserFacingError
from bot.storage.store import Store

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}

_QUEUE_STATES = (
    ReplyState.QUEUED,
    ReplyState.SENDING,
    ReplyState.FAILED,
    ReplyState.AWAITING_MANUAL,
    ReplyState.DEAD,
)


@dataclass(frozen=True)
class Stats:
    """Figures for one period (and optionally one brand)."""

    period: str
    brand: str | None
    total: int
    by_state: dict[str, int]
    by_platform: dict[str, int]
    by_intent: dict[str, int]
    queue: dict[str, int]
    answered: int
    median_response_s: float | None
    p90_response_s: float | None
    llm: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """LLM spend per purpose (draft, triage, …:repair): calls, tokens, cached tokens."""
    llm_drafts: int = 0
    """Mentions drafted by the LLM in the period (for tokens per drafted mention)."""
    since: datetime | None = None
    """Start of the period the figures were counted from (charts reuse it)."""
    posting_costs: dict[str, tuple[int, float]] = field(default_factory=dict)
    """What platforms charged for posting (X pay-per-use), per publisher: replies, dollars."""


def parse_period(value: str | None) -> str:
    """Validate a period argument; the default is 24h."""
    period = (value or "24h").lower()
    if period not in PERIODS:
        raise UserFacingError(f"unknown period {value!r}; use one of {', '.join(PERIODS)}")
    return period


async def compute_stats(store: Store, period: str = "24h", brand: str | None = None) -> Stats:
    """Gather the figures from the store."""
    since = utcnow() - PERIODS[parse_period(period)]
    by_state = await store.stats.count_by("state", since, brand)
    times = sorted(await store.stats.response_seconds(since, brand))
    replies = await store.replies.in_states(
        _QUEUE_STATES, limit=10_000, brands=[brand] if brand else None
    )
    queue: dict[str, int] = {}
    for reply in replies:
        queue[reply.state.value] = queue.get(reply.state.value, 0) + 1
    llm = await store.llm_usage.by_purpose(since, brand)
    p90 = None
    if times:
        p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return Stats(
        period=period,
        brand=brand,
        total=sum(by_state.values()),
        by_state=by_state,
        by_platform=await store.stats.count_by("platform", since, brand),
        by_intent=await store.stats.count_by("intent", since, brand),
        queue=queue,
        answered=len(times),
        median_response_s=statistics.median(times) if times else None,
        p90_response_s=p90,
        llm=llm,
        llm_drafts=llm.get("draft", (0, 0, 0))[0],
        since=since,
        posting_costs=await store.stats.posting_costs(since, brand),
    )


def human_duration(seconds: float | None) -> str:
    """'42s', '7m', '3.5h', '2.0d' or '—'."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def _mix(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in ordered) or "none"


def stats_lines(stats: Stats) -> list[str]:
    """The figures as short plain-text lines (frontends add their own markup)."""
    scope = f" for {stats.brand}" if stats.brand else ""
    return [
        f"Last {stats.period}{scope}: {stats.total} mentions",
        f"By state: {_mix(stats.by_state)}",
        f"By platform: {_mix(stats.by_platform)}",
        f"By intent: {_mix(stats.by_intent)}",
        f"Answered: {stats.answered} · median response {human_duration(stats.median_response_s)}"
        f" · p90 {human_duration(stats.p90_response_s)}",
        f"Outbox: {_mix(stats.queue)}",
        *cost_lines(stats),
        *llm_lines(stats),
    ]


def cost_lines(stats: Stats) -> list[str]:
    """What posting cost where the platform charges for it (X pay-per-use)."""
    if not stats.posting_costs:
        return []
    total = sum(dollars for _, dollars in stats.posting_costs.values())
    parts = ", ".join(
        f"{name} {count} replies ${dollars:.2f}"
        for name, (count, dollars) in sorted(stats.posting_costs.items())
    )
    return [f"Posting cost: ${total:.2f} ({parts})"]


def llm_lines(stats: Stats) -> list[str]:
    """The LLM spend: calls and tokens per purpose, tokens per drafted mention."""
    if not stats.llm:
        return []
    calls = sum(c for c, _, _ in stats.llm.values())
    tokens = sum(t for _, t, _ in stats.llm.values())
    cached = sum(k for _, _, k in stats.llm.values())
    parts = ", ".join(f"{p} {c} calls/{t:,} tok" for p, (c, t, _) in sorted(stats.llm.items()))
    draft_tokens = sum(t for p, (_, t, _) in stats.llm.items() if p.startswith("draft"))
    per_draft = ""
    if stats.llm_drafts:
        per_draft = f" · {draft_tokens // stats.llm_drafts:,} tokens per drafted mention"
    return [
        f"LLM: {calls} calls, {tokens:,} tokens ({cached:,} prompt tokens cached){per_draft}",
        f"LLM by purpose: {parts}",
    ]
