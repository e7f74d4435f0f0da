"""A manual "Posted it" records who confirmed it, and every alert render says so."""

from __future__ import annotations

from bot.app import build_core
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.domain.states import ReplyState
from bot.events import MentionChanged
from bot.frontends.console.frontend import ConsoleFrontend
from bot.frontends.discord.render import reply_line
from bot.frontends.telegram.render import render_alert
from bot.presentation import alert_view, reply_status
from bot.settings import Settings
from tests.helpers import raw

CM = Actor(platform="console", user_id="cm", display_name="Ana")
ALICE = Actor(platform="console", user_id="alice", display_name="@alice")


async def test_the_confirming_person_is_recorded_and_shown(
    settings: Settings, config: ParleyConfig
) -> None:
    manual = settings.model_copy(update={"parley_default_publisher": "manual"})
    async with build_core(manual, config) as core:
        batch = await core.ingestor.store_batch([raw("m1", "Is Acme down? refund please")])
        (alerted,) = await core.alerter.alert(batch, first_poll=False)
        await core.review.draft(alerted.id, CM)
        await core.review.approve(alerted.id, CM)
        await core.outbox.send_due()
        waiting = await core.store.replies.for_mention(alerted.id)
        assert waiting is not None and waiting.state is ReplyState.AWAITING_MANUAL
        assert waiting.posted_by_hand is None
        console = ConsoleFrontend(core)
        assert await console.handle_line(f"confirm {alerted.id} https://example.com/r/9") == []
        reply = await core.store.replies.for_mention(alerted.id)
        assert reply is not None and reply.state is ReplyState.SENT
        assert reply.posted_by_hand == "console:you"
        assert [
            r.posted_by_hand for r in await core.store.replies.in_states([ReplyState.SENT])
        ] == ["console:you"]
        mention = await core.store.mentions.get(alerted.id)
    told = console.render_event(MentionChanged(mention, [], reply, console.actor, "confirm"))
    assert told == [f"✔ #{mention.id} posted by hand by console:you: https://example.com/r/9"]
    assert reply_status(reply) == "posted by hand by console:you: https://example.com/r/9"
    view = alert_view(mention, [], reply, "Acme")
    assert "✅ <b>Posted</b> by hand by console:you · <a" in render_alert(view, reply=reply)
    assert (reply_line(reply, None) or "").startswith("✅ **Posted** by hand by console:you · [")


async def test_a_reply_posted_by_a_connector_names_nobody(
    settings: Settings, config: ParleyConfig
) -> None:
    async with build_core(settings, config) as core:  # the log publisher posts by itself
        batch = await core.ingestor.store_batch([raw("m2", "Is Acme down? refund please")])
        (alerted,) = await core.alerter.alert(batch, first_poll=False)
        await core.review.draft(alerted.id, ALICE)
        await core.review.approve(alerted.id, ALICE)
        await core.outbox.send_due()
        reply = await core.store.replies.for_mention(alerted.id)
    assert reply is not None and reply.state is ReplyState.SENT
    assert reply.posted_by_hand is None and reply_status(reply) == "posted: log://reply/1"
