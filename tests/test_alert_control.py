"""Pausing and resuming alerts: held mentions stay new, are alerted once, survive restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.app import Core, build_core
from bot.config import BrandConfig, ParleyConfig
from bot.domain.models import Actor, Mention, utcnow
from bot.domain.states import MentionState
from bot.drafting.base import DraftText
from bot.errors import PermissionDenied
from bot.events import Event, MentionAlert, MentionChanged
from bot.settings import Settings
from tests.helpers import raw

LEAD = Actor(platform="console", user_id="console", display_name="you")


def _events(core: Core) -> list[Event]:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    core.bus.subscribe("test", record)
    return seen


async def _deliver(core: Core) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(core.bus.run(stop))
    await core.bus.drain()
    stop.set()
    await task


async def _poll(core: Core, *items: tuple[str, str], first_poll: bool = False) -> list[int]:
    batch = await core.ingestor.store_batch([raw(i, text) for i, text in items])
    await core.alerter.alert(batch, first_poll=first_poll)
    return [n.id for n in batch.new]


async def test_paused_mentions_are_stored_but_held_until_resume(core: Core) -> None:
    events = _events(core)
    await core.alerts.pause(LEAD)
    assert core.alerts.paused
    question, urgent = await _poll(
        core,
        ("q", "How do I export from acme cloud?"),
        ("u", "acme is down, I want a refund"),
    )
    await _deliver(core)
    assert events == []
    for mention_id in (question, urgent):
        mention = await core.store.mentions.get(mention_id)
        assert mention.state is MentionState.NEW
        assert await core.store.drafts.current(mention_id) == []
    assert await core.alerts.held() == 2
    assert await core.alerts.pending() == []

    assert await core.alerts.resume(LEAD) == 2
    assert not core.alerts.paused
    await core.auto_drafts.drain()  # alerts go out first; their drafts follow
    await _deliver(core)
    alerts = [e for e in events if isinstance(e, MentionAlert)]
    assert [a.mention.id for a in alerts] == [urgent, question]  # urgent first
    drafted = [e for e in events if isinstance(e, MentionChanged) and e.action == "drafted"]
    assert {d.mention.id for d in drafted} == {urgent, question}
    assert all(d.drafts and d.mention.state is MentionState.DRAFTED for d in drafted)  # auto-draft
    assert await core.alerts.held() == 0
    trail = await core.store.audit.trail("control", 0)
    assert [(e.action, e.actor) for e in trail] == [
        ("pause", "console:you"),
        ("resume", "console:you"),
    ]
    assert trail[1].detail == "2 held mentions alerted"


async def test_pause_and_resume_are_for_approvers_only(core: Core) -> None:
    guest = Actor(platform="telegram", user_id="99")
    with pytest.raises(PermissionDenied, match="only approvers can pause alerts"):
        await core.alerts.pause(guest)
    await core.alerts.pause(LEAD)
    with pytest.raises(PermissionDenied, match="only approvers can resume alerts"):
        await core.alerts.resume(guest)
    assert core.alerts.paused


async def test_pausing_twice_is_one_change(core: Core) -> None:
    await core.alerts.pause(LEAD)
    await core.alerts.pause(LEAD)
    assert [e.action for e in await core.store.audit.trail("control", 0)] == ["pause"]
    assert await core.alerts.resume(LEAD) == 0
    assert await core.alerts.resume(LEAD) == 0  # not paused and nothing held: no audit row
    assert [e.action for e in await core.store.audit.trail("control", 0)] == ["pause", "resume"]


async def test_held_mentions_survive_a_restart_and_are_alerted_once(
    settings: Settings, config: ParleyConfig
) -> None:
    async with build_core(settings, config) as core:
        await core.alerts.pause(LEAD)
        held = await _poll(core, ("a", "acme cloud is slow"), ("b", "globex news today"))
    async with build_core(settings, config) as core:
        assert core.alerts.paused and core.alerter.paused
        events = _events(core)
        await _poll(core, ("c", "acme cloud question"))
        assert await core.alerts.held() == 3
        assert await core.alerts.resume(LEAD) == 3
        await _deliver(core)
        alerted = [e.mention.id for e in events if isinstance(e, MentionAlert)]
        assert alerted[:2] == held and len(alerted) == 3
    async with build_core(settings, config) as core:
        assert not core.alerts.paused
        assert await core.alerts.resume(LEAD) == 0


async def test_a_late_poll_alert_never_doubles_a_resumed_mention(core: Core) -> None:
    events = _events(core)
    await core.alerts.pause(LEAD)
    batch = await core.ingestor.store_batch([raw("x", "acme cloud rocks")])
    # The resume lands between the poll storing the batch and alerting it.
    assert await core.alerts.resume(LEAD) == 1
    assert await core.alerter.alert(batch, first_poll=False) == []
    await _deliver(core)
    assert len([e for e in events if isinstance(e, MentionAlert)]) == 1
    trail = await core.store.audit.trail("mention", batch.new[0].id)
    assert [e.action for e in trail].count("alert") == 1


async def test_a_held_mention_decided_before_resume_is_not_alerted(core: Core) -> None:
    await core.alerts.pause(LEAD)
    first, second = await _poll(core, ("a", "acme cloud one"), ("b", "acme cloud two"))
    await core.review.ignore(first, LEAD, "spam")
    assert await core.alerts.resume(LEAD) == 1
    await core.auto_drafts.drain()  # its draft follows the alert
    assert (await core.store.mentions.get(first)).state is MentionState.IGNORED
    assert (await core.store.mentions.get(second)).state is MentionState.DRAFTED


async def test_a_first_poll_while_paused_still_files_old_items_as_backlog(core: Core) -> None:
    await core.alerts.pause(LEAD)
    old = raw("old", "acme cloud from last year", created_at=utcnow() - timedelta(days=30))
    fresh = raw("new", "acme cloud today")
    batch = await core.ingestor.store_batch([old, fresh])
    await core.alerter.alert(batch, first_poll=True)
    states = {n.raw.external_id: (await core.store.mentions.get(n.id)).state for n in batch.new}
    assert states == {"old": MentionState.BACKLOG, "new": MentionState.NEW}
    assert await core.alerts.resume(LEAD) == 1


async def test_copies_of_a_held_mention_are_counted_silently(core: Core) -> None:
    events = _events(core)
    await core.alerts.pause(LEAD)
    (original,) = await _poll(core, ("a", "acme cloud lost all my notes today, help"))
    copy = raw("b", "RT acme cloud lost all my notes today, help", source="other")
    await core.alerter.alert(await core.ingestor.store_batch([copy]), first_poll=False)
    await _deliver(core)
    assert not [e for e in events if isinstance(e, MentionChanged)]
    await core.alerts.resume(LEAD)
    await _deliver(core)
    (alert,) = [e for e in events if isinstance(e, MentionAlert)]
    assert (alert.mention.id, alert.mention.duplicates) == (original, 1)


class BrokenDrafter:
    """A drafter whose every call fails."""

    name = "broken"

    async def draft(
        self,
        mention: Mention,
        brand: BrandConfig,
        *,
        variants: int = 3,
        instruction: str | None = None,
    ) -> list[DraftText]:
        raise RuntimeError("LLM down")


async def test_an_alert_is_shown_even_when_auto_draft_fails(core: Core) -> None:
    events = _events(core)
    core.review.drafter = BrokenDrafter()
    (mention_id,) = await _poll(core, ("a", "acme cloud question"))
    await core.auto_drafts.drain()
    await _deliver(core)
    (alert,) = [e for e in events if isinstance(e, MentionAlert)]
    assert (alert.mention.id, alert.drafts, alert.mention.state) == (
        mention_id,
        [],
        MentionState.ALERTED,
    )
    assert not (await core.store.mentions.get(mention_id)).drafting  # no "drafting…" left


async def test_pending_lists_undecided_mentions_urgent_then_oldest(core: Core) -> None:
    first, urgent, globex, third = await _poll(
        core,
        ("1", "acme cloud first"),
        ("2", "acme is down"),
        ("3", "globex launch"),
        ("4", "acme cloud third"),
    )
    await core.review.reject(third, LEAD)
    pending = await core.alerts.pending()
    assert [m.id for m in pending] == [urgent, first, globex]
    assert [m.id for m in await core.alerts.pending(brand="globex")] == [globex]
    assert [m.id for m in await core.alerts.pending(limit=1)] == [urgent]
    assert await core.alerts.pending_count() == 3
    assert await core.alerts.pending_count(brand="acme") == 2
