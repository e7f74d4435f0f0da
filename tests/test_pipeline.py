"""The pipeline: match → dedupe → store → alert, look-back on first poll, supervised sources."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.app import Core
from bot.connectors.base import FetchResult
from bot.domain.models import RawMention, utcnow
from bot.domain.states import MentionState
from bot.errors import SourceError
from bot.events import MentionAlert, MentionChanged, Notice
from bot.pipeline.runner import PollOutcome, SourceRunner
from tests.helpers import ScriptedSource, eventually, raw

COMPLAINT = "Acme cloud has been down all morning and support is not answering my tickets at all"


def _events(core: Core) -> list[object]:
    seen: list[object] = []

    async def record(event: object) -> None:
        seen.append(event)

    core.bus.subscribe("test", record)
    return seen


async def _deliver(core: Core) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(core.bus.run(stop))
    await core.bus.drain()
    stop.set()
    await task


async def test_matching_and_three_layers_of_dedupe(core: Core) -> None:
    events = _events(core)
    first = await core.ingestor.store_batch(
        [
            raw("1", COMPLAINT, url="https://blog.example/acme-review?utm_source=x"),
            raw("2", "Looking for a job at Acme? We are hiring", url="https://jobs.example/1"),
            raw("3", "Nothing to see here", url="https://other.example/"),
        ]
    )
    assert [n.raw.external_id for n in first.new] == ["1"]
    assert first.unmatched == 2  # the job post is excluded, the third matches no rule
    await core.alerter.alert(first, first_poll=False)
    second = await core.ingestor.store_batch(
        [
            raw("1", COMPLAINT),  # the same item again
            raw(
                "9",
                "Great review of Acme",
                source="reddit",
                platform="reddit",
                url="https://blog.example/acme-review#comments",
            ),  # same link elsewhere
            raw(
                "10",
                "RT @bob: " + COMPLAINT + " https://t.co/xyz",
                source="x",
                platform="x",
                url="https://x.example/status/10",
            ),  # a repost
        ]
    )
    assert second.skipped_known == 1 and second.new == []
    assert [(c.external_id, c.reason) for c in second.copies] == [
        ("9", "same link"),
        ("10", "near-identical text"),
    ]
    await core.alerter.alert(second, first_poll=False)
    await _deliver(core)
    mention_id = first.new[0].id
    assert (await core.store.mentions.get(mention_id)).duplicates == 2
    changes = [e for e in events if isinstance(e, MentionChanged) and e.action == "duplicate"]
    assert changes and changes[-1].mention.duplicates == 2


async def test_first_poll_keeps_old_items_quiet_and_urgent_goes_first(core: Core) -> None:
    events = _events(core)
    old = utcnow() - timedelta(days=3)
    batch = await core.ingestor.store_batch(
        [
            raw("old", "Acme cloud was fine last week, nice tool overall", created_at=old),
            raw("calm", "Trying acme cloud for our team wiki this week"),
            raw("fire", "Acme is down again, I want a refund now"),
        ]
    )
    alerted = await core.alerter.alert(batch, first_poll=True)
    assert [m.external_id for m in alerted] == ["fire", "calm"]
    old_id = next(n.id for n in batch.new if n.raw.external_id == "old")
    assert (await core.store.mentions.get(old_id)).state is MentionState.BACKLOG
    await _deliver(core)
    alerts = [e.mention.external_id for e in events if isinstance(e, MentionAlert)]
    assert alerts == ["fire", "calm"]
    # Later polls alert everything new, however old.
    later = await core.ingestor.store_batch(
        [raw("old2", "An old acme cloud thread resurfaced today, quite nice", created_at=old)]
    )
    assert len(await core.alerter.alert(later, first_poll=False)) == 1


async def test_multi_brand_routing_by_rule(core: Core) -> None:
    batch = await core.ingestor.store_batch(
        [raw("g", "Globex shipped a new release today"), raw("a", "acme cloud release notes")]
    )
    assert {n.raw.external_id: n.brand for n in batch.new} == {"g": "globex", "a": "acme"}


def _items(source: str, *texts: str) -> list[RawMention]:
    return [raw(f"{source}-{i}", t, source=source) for i, t in enumerate(texts)]


async def test_a_failing_source_does_not_stop_the_others(core: Core) -> None:
    events = _events(core)
    broken = ScriptedSource(
        "broken",
        [
            SourceError("broken: timed out after 20s"),
            RuntimeError("boom"),
            FetchResult([], {"n": "1"}),
        ],
    )
    healthy = ScriptedSource(
        "healthy",
        [
            FetchResult(
                _items("healthy", "acme cloud rocks, loving the new editor"), {"etag": "1"}
            ),
            FetchResult(
                _items(
                    "healthy",
                    "acme cloud rocks, loving the new editor",
                    "globex is hiring interns this summer",
                ),
                {"etag": "2"},
            ),
        ],
    )
    for source in (broken, healthy):
        core.runners.append(SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus))
    outcomes = [await r.poll_once() for r in core.runners for _ in range(2)]
    assert outcomes[0].error == "broken: timed out after 20s"
    assert outcomes[1].error == "broken: unexpected error (RuntimeError)"
    assert (outcomes[2].new, outcomes[3].new) == (1, 1)
    assert healthy.cursors == [{}, {"etag": "1"}]
    status = await core.store.sources.status("broken")
    assert status.consecutive_failures == 2 and status.last_error is not None
    await core.runners[0].poll_once()
    assert (await core.store.sources.status("broken")).consecutive_failures == 0
    await _deliver(core)
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices == [
        "Source broken failed: broken: timed out after 20s. Retrying with backoff.",
        "Source broken is working again.",
    ]


async def test_backoff_grows_and_honours_retry_after(core: Core) -> None:
    source = ScriptedSource("s", [], interval=60)
    runner = SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus)
    assert runner.delay_after(PollOutcome(), 0) == 60
    assert runner.delay_after(PollOutcome(error="x"), 1) == 120
    assert runner.delay_after(PollOutcome(error="x"), 3) == 480
    assert runner.delay_after(PollOutcome(error="x"), 30) == 3600
    assert runner.delay_after(PollOutcome(error="x", retry_after=900), 1) == 900


async def test_supervised_loop_keeps_polling_until_stopped(core: Core) -> None:
    source = ScriptedSource(
        "loop",
        [SourceError("flaky"), FetchResult(_items("loop", "acme cloud is neat"), {})],
        interval=0.01,
    )
    runner = SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def polled_thrice() -> bool:
        return len(source.cursors) >= 3

    await eventually(polled_thrice, "three polls")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert len(await core.store.mentions.newest(None)) == 1
