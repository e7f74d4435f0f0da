"""Alert latency benchmark: how long a fetched mention waits before its alert is sent, when the
model takes 3 s per draft.

Data: 25 synthetic mentions of the brand ``acme`` (distinct questions, so none is a near
duplicate), fetched in 5 polls of 5, one poll every 0.5 s: later polls arrive while earlier
drafts are still being written.

Method: a real core (``build_core``: SQLite store, matcher, LLM triage and drafting, alert queue,
throttle) on a temporary database. The model is a loopback HTTP server speaking the OpenAI
chat-completions wire format (``fakes.openai``): triage answers at once, every draft request
takes 3 s.
The chat is a loopback adapter registered as a chat frontend's alert delivery, which records
when each alert is sent; its limits are generous, so no platform rate wait is included. For
each mention, latency = time its alert was sent - time its poll's items were handed to the
pipeline (fetch done). Before alerts stopped waiting for drafts, five mentions with a 3 s model
were alerted at 9, 12, 15, 18 and 21 s. Target: p95 ≤ 200 ms.

Run: ``python bench/alert_latency.py``. The last line is ``p50_ms=… p95_ms=… n=…``; the exit
status is 1 if the target is missed or a draft was not written.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Hashable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build_core
from bot.config import parse_config
from bot.domain.models import Author, Draft, Mention, RawMention, Reply, utcnow
from bot.services.throttle import OutgoingAlert, Rate, ThrottleLimits
from bot.settings import Settings
from fakes.openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
DRAFT_SECONDS = 3.0
POLLS, PER_POLL, POLL_GAP = 5, 5, 0.5
TARGET_P95_MS = 200.0
CONFIG: dict[str, object] = {
    "brands": [{"name": "acme", "rules": [{"name": "any", "query": "acme"}]}]
}


class LoopbackChat:
    """A chat that records when each alert was sent (a ChatAdapter)."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.edits = 0

    def route(self, brand: str) -> Hashable | None:
        """Every brand goes to one chat."""
        return "team"

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        """Record the send time of one alert."""
        self.sent[alert.mention.id] = time.perf_counter()
        return f"team:{alert.mention.id}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Record a digest's alerts as sent (none expected with these limits)."""
        for alert in alerts:
            self.sent[alert.mention.id] = time.perf_counter()

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        """Count the edits (drafts arriving)."""
        self.edits += 1

    async def notice(self, text: str) -> None:
        """Notices are not measured."""


def items(poll: int) -> list[RawMention]:
    """One poll's fetched items."""
    now = utcnow()
    return [
        RawMention(
            source="bench",
            platform="rss",
            external_id=f"{poll}-{i}",
            url=f"https://example.com/{poll}/{i}",
            author=Author(handle=f"user{poll}{i}"),
            text=f"Question {poll * 100 + i}: how do I {word} with acme, step {poll}-{i}?",
            language="en",
            created_at=now - timedelta(seconds=1),
        )
        for i, word in enumerate(["export", "import", "sync", "share", "restore"][:PER_POLL])
    ]


async def measure() -> tuple[list[float], int, int]:
    """Latencies in ms, drafts written, and alert edits."""
    model = await FakeOpenAI().start()
    model.draft_delay = DRAFT_SECONDS
    chat = LoopbackChat()
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
            settings = Settings(
                _env_file=None,
                parley_db_path=Path(tmp) / "bench.db",
                parley_prompts_dir=ROOT / "prompts",
                parley_default_publisher="log",
                openai_base_url=model.base_url,
                openai_api_key="bench",
                parley_llm_timeout=30.0,
                parley_triage_window_seconds=0.0,
            )
            async with build_core(settings, parse_config(CONFIG, "bench.toml")) as core:
                limits = ThrottleLimits(per_destination=(Rate(1000, 1.0),), digest_horizon=1.0)
                delivery = core.deliveries.add("bench", chat, limits)
                core.bus.subscribe("bench", delivery.on_event)
                stop = asyncio.Event()
                runners = [
                    asyncio.create_task(delivery.run(stop)),
                    asyncio.create_task(core.bus.run(stop)),
                ]
                fetched: dict[int, float] = {}
                for poll in range(POLLS):
                    start = time.perf_counter()
                    batch = await core.ingestor.store_batch(items(poll))
                    for mention in await core.alerter.alert(batch, first_poll=False):
                        fetched[mention.id] = start
                    await asyncio.sleep(POLL_GAP)
                await core.settle(limit=120.0)
                stop.set()
                await asyncio.gather(*runners)
                rows = await core.store.db.fetchall("SELECT COUNT(DISTINCT mention_id) FROM drafts")
    finally:
        await model.stop()
    latencies = [(chat.sent[i] - fetched[i]) * 1000 for i in fetched if i in chat.sent]
    return latencies, int(rows[0][0]), chat.edits


def main() -> int:
    """Run the measurement, print the figures; 1 when the target is missed."""
    latencies, drafted, edits = asyncio.run(measure())
    n = len(latencies)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[min(n - 1, round(0.95 * (n - 1)))]
    print(
        f"mentions: {POLLS * PER_POLL}; alerts sent: {n}; drafts written: {drafted}; "
        f"alerts edited: {edits}; slowest alert: {ordered[-1]:.0f} ms"
    )
    print(f"p50_ms={p50:.0f} p95_ms={p95:.0f} n={n}")
    ok = n == POLLS * PER_POLL and drafted == n and p95 <= TARGET_P95_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
