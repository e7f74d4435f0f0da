"""Post anyway in Discord, end to end against the fake REST + gateway: an edit the guards hold
comes back as an ephemeral follow-up with the reasons and a Post anyway button; a member who is
not an approver is refused, the approver keeps the text once and the audit records it."""

from __future__ import annotations

from typing import Any

from bot.config import ParleyConfig
from bot.services.review import POSTED_ANYWAY
from bot.settings import Settings
from fakes.discord import ANN, APP_ID, BOB, FakeDiscord
from tests import discord_harness
from tests.discord_harness import (
    DEFERRED_UPDATE,
    EPHEMERAL,
    POSTS,
    callback,
    custom_ids,
    running,
    settle,
    text_input,
)
from tests.helpers import raw

# The fixtures of tests/discord_harness.py (pytest finds fixtures by module attribute).
endpoints = discord_harness.endpoints
fake = discord_harness.fake
dc_settings = discord_harness.dc_settings

HELD_TEXT = "Sorry! Call +1 415 555 2671 or use code PROMO2024 at evil.top"


def message_with(fake: FakeDiscord, custom_id: str) -> dict[str, Any]:
    """The last message the bot sent that carries a component with ``custom_id``."""
    found = [m for m in fake.messages.values() if custom_id in custom_ids(m)]
    assert found, f"no message carries {custom_id}"
    return found[-1]


async def test_a_held_modal_edit_is_posted_anyway_by_an_approver(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        item = raw("bsky-1", "acme cloud sync keeps failing", platform="bluesky")
        (mention,) = await core.alerter.alert(
            await core.ingestor.store_batch([item]), first_poll=False
        )
        await fake.wait_for("POST", POSTS)
        await settle(core)
        ref = (await core.store.mentions.get(mention.id)).alert_refs["discord"]
        message_id = ref.partition(":")[2]

        click = await fake.click(ANN, message_id, f"p1:ed:{mention.id}")
        box = text_input((await callback(fake, click.id))["data"])
        submit = await fake.submit(ANN, click, {box["custom_id"]: HELD_TEXT})
        assert (await callback(fake, submit.id))["type"] == DEFERRED_UPDATE
        (held,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/{submit.token}")
        assert held.body["flags"] == EPHEMERAL
        content = held.body["content"]
        assert f"Your reply to #{mention.id} was held" in content
        for reason in ("links to evil.top", "phone number", "promo code (PROMO2024)"):
            assert reason in content
        selected = await core.store.drafts.selected(mention.id)
        assert selected is not None and selected.text != HELD_TEXT  # held, not saved
        button = f"p1:pa:{mention.id}"
        followup_id = message_with(fake, button)["id"]

        refused = await fake.click(BOB, followup_id, button)
        answer = await callback(fake, refused.id)
        assert "only approvers can decide" in answer["data"]["content"]
        selected = await core.store.drafts.selected(mention.id)
        assert selected is not None and selected.text != HELD_TEXT

        kept = await fake.click(ANN, followup_id, button)
        assert (await callback(fake, kept.id))["type"] == DEFERRED_UPDATE
        (told,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/{kept.token}")
        assert told.body["content"].startswith("Kept as you wrote it (recorded).")
        draft = await core.store.drafts.selected(mention.id)
        assert draft is not None and draft.text == HELD_TEXT
        assert draft.origin == "edit:discord:Ann"
        trail = await core.store.audit.trail("mention", mention.id)
        (anyway,) = [e for e in trail if e.action == POSTED_ANYWAY]
        assert anyway.actor == "discord:Ann" and "promo code" in (anyway.detail or "")
