"""Stats charts as PNG: mentions over time by sentiment, response times and the outbox.

Platform-agnostic: frontends send or save the bytes. matplotlib is imported only when a chart
is drawn (so start-up stays fast) and drawing runs in a worker thread (so the event loop keeps
serving). Only the object-oriented API is used, never pyplot's global figures.
"""

from __future__ import annotations

import asyncio
import bisect
import io
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from bot import localtime
from bot.domain.models import utcnow
from bot.services.stats import PERIODS, Stats, human_duration, parse_period
from bot.storage.store import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Bucket = Literal["hour", "day"]

SENTIMENTS = ("negative", "neutral", "positive")
UNTRIAGED = "not triaged"
WIDTH_PX, HEIGHT_PX, DPI = 1000, 700, 100
"""A phone-sized landscape picture; Telegram shows it without downscaling much."""

_COLOURS = {
    "negative": "#d62728",
    "neutral": "#a0a0a0",
    "positive": "#2ca02c",
    UNTRIAGED: "#5b8fd0",
}
_OUTBOX = {
    "queued": "queued",
    "sending": "sending",
    "failed": "failed",
    "awaiting_manual": "to post by hand",
    "dead": "dead",
}
_TITLE, _LABEL, _TICK = 22, 16, 14
"""Font sizes in points: read on a phone, the picture is shown about 1/3 of its size."""
_MAX_TICKS = 8
_RENDER_LOCK = threading.Lock()
"""matplotlib is not thread-safe (font caches, text layout): one chart is drawn at a time."""


@dataclass(frozen=True)
class VolumeSeries:
    """Mentions per time bucket over a period, split by triage sentiment."""

    bucket: Bucket
    starts: tuple[datetime, ...]
    """Start of every bucket in the display zone, empty ones included, oldest first."""
    counts: dict[str, tuple[int, ...]]
    """Non-empty series only, in stacking order (negative, neutral, positive, not triaged):
    name → count per bucket, aligned with ``starts``."""

    @property
    def totals(self) -> tuple[int, ...]:
        """All mentions per bucket."""
        return tuple(sum(column) for column in zip(*self.counts.values(), strict=True)) or (
            (0,) * len(self.starts)
        )

    @property
    def triaged(self) -> bool:
        """Whether any mention in the period carries a sentiment."""
        return any(name in SENTIMENTS for name in self.counts)


def bucket_for(period: str) -> Bucket:
    """Hourly buckets for a day, daily ones for longer periods."""
    return "hour" if PERIODS[parse_period(period)] <= timedelta(days=1) else "day"


def bucket_starts(since: datetime, end: datetime, bucket: Bucket, zone: tzinfo) -> list[datetime]:
    """Starts of the local hours or days from the one holding ``since`` to the one holding
    ``end``, in ``zone`` (a day is 23 or 25 hours long when the clocks change)."""
    first = since.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        first = first.astimezone(UTC)
        count = int((end - first) // timedelta(hours=1)) + 1
        return [(first + timedelta(hours=i)).astimezone(zone) for i in range(count)]
    day, last = first.date(), end.astimezone(zone).date()
    return [
        datetime.combine(day + timedelta(days=i), time(), zone)
        for i in range((last - day).days + 1)
    ]


async def volume_series(
    store: Store,
    period: str = "24h",
    brand: str | None = None,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    zone: tzinfo | None = None,
) -> VolumeSeries:
    """Mentions fetched in the period per local hour or day and sentiment.

    ``since`` defaults to ``now`` minus the period (pass :attr:`Stats.since` to count over
    exactly the window of the text figures); the first and last buckets may be partial.
    Buckets follow ``zone`` (default: PARLEY_TIMEZONE), so a day starts at local midnight.
    """
    period = parse_period(period)
    now = now or utcnow()
    since = since or now - PERIODS[period]
    bucket = bucket_for(period)
    rows = await store.stats.volume_slots(since, brand)
    # A mention stored after `now` (during the query) still gets its bucket.
    end = max([now, *(slot for slot, _, _ in rows)])
    starts = bucket_starts(since, end, bucket, zone or localtime.zone())
    counts: dict[str, list[int]] = {}
    for slot, sentiment, count in rows:
        name = sentiment if sentiment in SENTIMENTS else UNTRIAGED
        index = max(0, bisect.bisect_right(starts, slot) - 1)
        counts.setdefault(name, [0] * len(starts))[index] += count
    order = (*SENTIMENTS, UNTRIAGED)
    return VolumeSeries(
        bucket=bucket,
        starts=tuple(starts),
        counts={name: tuple(counts[name]) for name in order if name in counts},
    )


def _empty(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title, fontsize=_LABEL, loc="left")
    ax.text(
        0.5, 0.45, text, transform=ax.transAxes, ha="center", va="center",
        fontsize=_LABEL, color="#777777",
    )  # fmt: skip
    ax.set_axis_off()


def _tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=_TICK)


def _volume_panel(ax: Axes, series: VolumeSeries) -> None:
    from matplotlib.ticker import MaxNLocator

    positions = list(range(len(series.starts)))
    bottom = [0] * len(positions)
    for name, values in series.counts.items():
        colour = _COLOURS[name] if series.triaged else _COLOURS[UNTRIAGED]
        ax.bar(positions, values, bottom=bottom, width=0.8, color=colour, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if series.triaged:
        ax.legend(fontsize=_TICK, loc="upper left", ncols=4, frameon=False)
    top = max(series.totals, default=0)
    # Headroom for the legend; an integer axis (counts) that is never 0 to 0.
    ax.set_ylim(0, max(1, math.ceil(top * (1.25 if series.triaged else 1.05))))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    every = max(1, math.ceil(len(positions) / _MAX_TICKS))
    shown = positions[::every]
    if series.bucket == "hour":
        labels = [f"{series.starts[i]:%H}:00" for i in shown]
    else:
        labels = [f"{series.starts[i]:%b} {series.starts[i].day}" for i in shown]
    ax.set_xticks(shown, labels)
    ax.set_xlim(-0.6, len(positions) - 0.4)
    ax.set_ylabel(f"mentions per {series.bucket}", fontsize=_LABEL)
    ax.set_xlabel(_zone_label(series), fontsize=_TICK, color="#555555", loc="right")
    _tidy(ax)
    if not top:
        ax.text(
            0.5, 0.5, "no mentions", transform=ax.transAxes, ha="center", va="center",
            fontsize=_LABEL, color="#777777",
        )  # fmt: skip


def _zone_label(series: VolumeSeries) -> str:
    """The zone the axis is in: its IANA name when it has one, else its abbreviation."""
    zone = series.starts[0].tzinfo if series.starts else None
    return str(getattr(zone, "key", None) or (series.starts[0].tzname() if zone else "") or "")


def _response_panel(ax: Axes, stats: Stats) -> None:
    title = f"Response time ({stats.answered} answered)"
    if not stats.answered or stats.median_response_s is None or stats.p90_response_s is None:
        _empty(ax, "Response time", "no replies sent")
        return
    seconds = [stats.median_response_s, stats.p90_response_s]
    scale, unit = next(
        (s, u) for s, u in ((86_400, "days"), (3600, "hours"), (60, "minutes"), (1, "seconds"))
        if max(seconds) >= s or s == 1
    )  # fmt: skip
    bars = ax.barh(["median", "p90"], [v / scale for v in seconds], color=["#4c72b0", "#dd8452"])
    ax.bar_label(bars, labels=[human_duration(v) for v in seconds], fontsize=_TICK, padding=4)
    ax.invert_yaxis()  # median on top
    ax.set_xlim(0, max(seconds) / scale * 1.35 or 1)  # room for the value labels
    ax.set_xlabel(unit, fontsize=_TICK)
    ax.set_title(title, fontsize=_LABEL, loc="left")
    _tidy(ax)


def _outbox_panel(ax: Axes, stats: Stats) -> None:
    from matplotlib.ticker import MaxNLocator

    queue = {state: n for state, n in stats.queue.items() if n}
    if not queue:
        _empty(ax, "Outbox now", "empty")
        return
    states = [s for s in _OUTBOX if s in queue] + sorted(set(queue) - set(_OUTBOX))
    bars = ax.barh(
        [_OUTBOX.get(s, s) for s in states],
        [queue[s] for s in states],
        color=["#d62728" if s in ("failed", "dead") else "#8172b3" for s in states],
    )
    ax.bar_label(bars, fontsize=_TICK, padding=4)
    ax.invert_yaxis()
    ax.set_xlim(0, max(queue.values()) * 1.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Outbox now ({sum(queue.values())})", fontsize=_LABEL, loc="left")
    _tidy(ax)


def render_stats_chart(stats: Stats, series: VolumeSeries, *, label: str | None = None) -> bytes:
    """The chart as a PNG of WIDTH_PX x HEIGHT_PX; blocking (see :func:`chart_png`).

    ``label`` names the brand in the title (default: the brand id, or "All brands").
    """
    from matplotlib.figure import Figure  # lazy: importing matplotlib takes a moment

    name = label or stats.brand or "All brands"
    noun = "mention" if stats.total == 1 else "mentions"
    with _RENDER_LOCK:
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        # parse_math=False: a brand named "$$$ Bank" must not be read as TeX.
        fig.suptitle(
            f"{name} · last {stats.period} · {stats.total} {noun}",
            fontsize=_TITLE, fontweight="bold", parse_math=False,
        )  # fmt: skip
        grid = fig.add_gridspec(2, 2, height_ratios=(2.3, 1))
        _volume_panel(fig.add_subplot(grid[0, :]), series)
        _response_panel(fig.add_subplot(grid[1, 0]), stats)
        _outbox_panel(fig.add_subplot(grid[1, 1]), stats)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()


async def chart_png(store: Store, stats: Stats, *, label: str | None = None) -> bytes:
    """The chart for figures already computed (the volume is counted over ``stats.since``),
    drawn in a worker thread."""
    series = await volume_series(store, stats.period, stats.brand, since=stats.since)
    return await asyncio.to_thread(render_stats_chart, stats, series, label=label)
