"""Review decisions and the outbox: permissions, double clicks, retries, exactly-once posting
across a simulated crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.app import Core, build_core
from bot.config import ParleyConfig
from bot.connectors.base import PublishResult
from bot.connectors.registry import Publishers
from bot.domain.models import SYSTEM, Actor, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.errors import InvalidTransition, PermissionDenied, PublishError, UserFacingError
from bot.presentation import alert_view
from bot.services.stats import compute_stats, stats_lines
from bot.settings import Settings
from tests.helpers import SteppedClock, raw
from tests.recording_publisher import RecordingPublisher

CM = Actor(platform="console", user_id="cm", display_name="Ana")
STRANGER = Actor(platform="telegram", user_id="999", display_name="Mallory")


@asynccontextmanager
async def wired(
    settings: Settings, config: ParleyConfig, ledger: Path
) -> AsyncIterator[tuple[Core, RecordingPublisher]]:
    """A core whose replies all go through a RecordingPublisher writing to ``ledger``."""
    async with build_core(settings, config) as core:
        publisher = RecordingPublisher(ledger)
        publishers = Publishers({"recording": publisher}, default="recording")
        core.review.publishers = publishers
        core.outbox.publishers = publishers
        core.outbox.base_delay = 0.01
        yield core, publisher


async def _alerted_mention(
    core: Core, external_id: str = "m1", text: str = "Is Acme down? I want a refund"
) -> int:
    batch = await core.ingestor.store_batch([raw(external_id, text, handle="bob")])
    alerted = await core.alerter.alert(batch, first_poll=False)
    await core.auto_drafts.drain()  # alerts go out first; their drafts follow
    return alerted[0].id


async def test_approve_posts_exactly_once_and_audits(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        mention_id = await _alerted_mention(core)
        mention = await core.store.mentions.get(mention_id)
        assert mention.state is MentionState.DRAFTED  # auto-draft on alert
        assert mention.urgent and mention.brand == "acme" and mention.rule == "outage"
        reply = await core.review.approve(mention_id, CM)
        with pytest.raises(InvalidTransition):
            await core.review.approve(mention_id, CM)  # a double click
        await core.outbox.send_due()
        await core.outbox.send_due()
        assert [p["key"] for p in publisher.posts()] == [reply.idempotency_key]
        sent = await core.store.replies.get(reply.id)
        assert sent.state is ReplyState.SENT and sent.posted_url == "https://example.com/r/1"
        assert (await core.store.mentions.get(mention_id)).state is MentionState.POSTED
        actions = [e.action for e in await core.store.audit.trail("mention", mention_id)]
        assert actions == ["alert", "draft", "approve", "sent"]
        reply_actions = [e.action for e in await core.store.audit.trail("reply", reply.id)]
        assert reply_actions == ["queue", "send", "sent"]


async def test_only_approvers_decide(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, _):
        mention_id = await _alerted_mention(core)
        for decide in (
            core.review.approve(mention_id, STRANGER),
            core.review.reject(mention_id, STRANGER),
            core.review.ignore(mention_id, STRANGER),
            core.review.edit(mention_id, "hi", STRANGER),
        ):
            with pytest.raises(PermissionDenied):
                await decide
        assert (await core.store.mentions.get(mention_id)).state is MentionState.DRAFTED


async def test_edit_replaces_the_text_and_is_audited(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        mention_id = await _alerted_mention(core)
        before = await core.store.drafts.selected(mention_id)
        await core.review.edit(mention_id, "  Sorry Bob, we are on it: status.acme.test  ", CM)
        with pytest.raises(UserFacingError, match="empty"):
            await core.review.edit(mention_id, "   ", CM)
        with pytest.raises(UserFacingError, match="allows"):
            await core.review.edit(mention_id, "x" * 6000, CM)
        await core.review.approve(mention_id, CM)
        await core.outbox.send_due()
        assert publisher.posts()[0]["text"] == "Sorry Bob, we are on it: status.acme.test"
        edit = next(
            e for e in await core.store.audit.trail("mention", mention_id) if e.action == "edit"
        )
        assert before is not None and edit.before_text == before.text
        assert edit.after_text == "Sorry Bob, we are on it: status.acme.test"
        assert edit.actor == "console:Ana"


async def test_retryable_errors_back_off_then_die_and_can_be_retried(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        clock = SteppedClock()
        core.outbox.clock = clock
        core.outbox.max_attempts = 2
        core.outbox.base_delay = 30.0
        mention_id = await _alerted_mention(core)
        reply = await core.review.approve(mention_id, CM)
        publisher.failures = [PublishError("503 from platform"), PublishError("503 again")]
        await core.outbox.send_due()
        queued = await core.store.replies.get(reply.id)
        assert queued.state is ReplyState.QUEUED and queued.next_attempt_at is not None
        assert await core.outbox.send_due() == 0  # backing off
        clock.advance(30)
        assert await core.outbox.send_due() == 1
        dead = await core.store.replies.get(reply.id)
        assert dead.state is ReplyState.DEAD and "gave up after 2 tries" in (dead.error or "")
        assert publisher.posts() == []
        await core.review.retry(mention_id, CM)
        await core.outbox.send_due()
        assert len(publisher.posts()) == 1
        assert (await core.store.mentions.get(mention_id)).state is MentionState.POSTED


async def test_permanent_error_is_dead_at_once(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        mention_id = await _alerted_mention(core)
        reply = await core.review.approve(mention_id, CM)
        publisher.failures = [PublishError("the post was deleted", permanent=True)]
        await core.outbox.send_due()
        dead = await core.store.replies.get(reply.id)
        assert dead.state is ReplyState.DEAD and dead.error == "the post was deleted"
        assert dead.attempts == 1


@pytest.mark.parametrize("posted_before_crash", [True, False])
async def test_crash_mid_send_never_posts_twice_nor_loses_the_reply(
    settings: Settings, config: ParleyConfig, tmp_path: Path, posted_before_crash: bool
) -> None:
    ledger = tmp_path / "ledger.json"
    async with wired(settings, config, ledger) as (core, publisher):
        mention_id = await _alerted_mention(core)
        reply = await core.review.approve(mention_id, CM)
        inside = asyncio.Event()  # set once the publisher is stuck mid-send
        if posted_before_crash:
            publisher.hang_after_post = True
            inside = publisher.hanging
        else:
            publisher.failures = []  # the crash comes before the request leaves
            original = publisher.publish

            async def die_before_posting(reply: Reply, mention: Mention) -> PublishResult:
                inside.set()
                await asyncio.Event().wait()
                return await original(reply, mention)  # pragma: no cover

            publisher.publish = die_before_posting  # type: ignore[method-assign]
        task = asyncio.create_task(core.outbox.send_due())
        await asyncio.wait_for(inside.wait(), 30)
        task.cancel()  # the process dies mid-send: the database keeps what was committed
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await core.store.replies.get(reply.id)).state is ReplyState.SENDING
    # Restart on the same database file.
    async with wired(settings, config, ledger) as (core, publisher):
        await core.outbox.recover()
        await core.outbox.send_due()
        final = await core.store.replies.get(reply.id)
        assert final.state is ReplyState.SENT
        assert [p["key"] for p in publisher.posts()] == [reply.idempotency_key]
        assert (await core.store.mentions.get(mention_id)).state is MentionState.POSTED


async def test_manual_publisher_waits_for_confirmation(
    settings: Settings, config: ParleyConfig
) -> None:
    manual = settings.model_copy(update={"parley_default_publisher": "manual"})
    async with build_core(manual, config) as core:
        mention_id = await _alerted_mention(core)
        await core.review.approve(mention_id, CM)
        await core.outbox.send_due()
        reply = await core.store.replies.for_mention(mention_id)
        assert reply is not None and reply.state is ReplyState.AWAITING_MANUAL
        assert (await core.store.mentions.get(mention_id)).state is MentionState.APPROVED
        await core.review.confirm_posted(mention_id, CM, "https://example.com/my-reply")
        reply = await core.store.replies.for_mention(mention_id)
        assert reply is not None and reply.state is ReplyState.SENT
        assert reply.posted_url == "https://example.com/my-reply"
        assert (await core.store.mentions.get(mention_id)).state is MentionState.POSTED


async def test_reject_and_ignore_close_the_mention(core: Core) -> None:
    first = await _alerted_mention(core, "m1")
    second = await _alerted_mention(core, "m2", "Acme cloud pricing page is confusing to me")
    await core.review.reject(first, CM, "not our product")
    await core.review.ignore(second, SYSTEM)
    assert (await core.store.mentions.get(first)).state is MentionState.REJECTED
    assert (await core.store.mentions.get(second)).state is MentionState.IGNORED
    with pytest.raises(InvalidTransition):
        await core.review.approve(first, CM)
    trail = await core.store.audit.trail("mention", first)
    assert trail[-1].action == "reject" and trail[-1].detail == "not our product"


async def test_a_failing_reconcile_leaves_the_reply_unsent_until_the_platform_answers(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        mention_id = await _alerted_mention(core)
        reply = await core.review.approve(mention_id, CM)
        await core.store.replies.transition(reply.id, ReplyState.SENDING, SYSTEM, "send")
        original = publisher.reconcile

        async def platform_down(reply: Reply, mention: Mention) -> PublishResult | None:
            raise PublishError("503 from platform")

        publisher.reconcile = platform_down  # type: ignore[method-assign]
        await core.outbox.recover()
        await core.outbox.send_due()
        assert (await core.store.replies.get(reply.id)).state is ReplyState.SENDING
        assert publisher.posts() == []
        publisher.reconcile = original  # type: ignore[method-assign]
        await core.outbox.recover()
        await core.outbox.send_due()
        assert (await core.store.replies.get(reply.id)).state is ReplyState.SENT
        assert len(publisher.posts()) == 1


async def test_posting_cost_is_kept_per_reply_and_shown_in_stats(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        publisher.cost_usd = 0.01
        first = await _alerted_mention(core)
        second = await _alerted_mention(core, "m2", "acme cloud export is broken again")
        for mention_id in (first, second):
            await core.review.approve(mention_id, CM)
        await core.outbox.send_due()
        reply = await core.store.replies.for_mention(first)
        assert reply is not None and reply.state is ReplyState.SENT and reply.cost_usd == 0.01
        stats = await compute_stats(core.store, "24h")
        assert list(stats.posting_costs) == ["recording"]
        count, cost = stats.posting_costs["recording"]
        assert count == 2 and cost == pytest.approx(0.02)
        assert "Posting cost: $0.02 (recording 2 replies $0.02)" in stats_lines(stats)
        assert not any(
            "Posting cost" in line
            for line in stats_lines(await compute_stats(core.store, "24h", "globex"))
        )


async def test_a_mention_answerable_only_by_hand_gets_the_manual_publisher(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    async with wired(settings, config, tmp_path / "ledger.json") as (core, publisher):
        item = raw("x1", "acme cloud keeps failing", platform="x").model_copy(
            update={"answerable": False}
        )
        batch = await core.ingestor.store_batch([item])
        (mention,) = await core.alerter.alert(batch, first_poll=False)
        await core.auto_drafts.drain()  # its draft follows the alert
        stored = await core.store.mentions.get(mention.id)
        assert stored.answerable is False
        view = alert_view(stored, await core.store.drafts.current(mention.id), None, "Acme")
        assert view.warnings[0].startswith("reply by hand: X does not let Parley answer")
        reply = await core.review.approve(mention.id, CM)
        assert reply.publisher == "manual"
        await core.outbox.send_due()
        stored_reply = await core.store.replies.for_mention(mention.id)
        assert stored_reply is not None and stored_reply.state is ReplyState.AWAITING_MANUAL
        assert publisher.posts() == []  # nothing went out automatically


async def test_mastodon_replies_keep_room_for_the_handle_the_publisher_adds(core: Core) -> None:
    batch = await core.ingestor.store_batch(
        [raw("t1", "acme cloud question", platform="mastodon", handle="someone@fosstodon.org")]
    )
    (mention,) = await core.alerter.alert(batch, first_poll=False)
    room = 500 - len("@someone ")  # Mastodon counts @user@domain as @user
    await core.review.edit(mention.id, "y" * room, CM)
    with pytest.raises(UserFacingError, match=f"mastodon allows {room}"):
        await core.review.edit(mention.id, "y" * (room + 1), CM)
