"""Discord end to end, continued: the edit modal, old buttons after a restart, deferral of a slow
draft, a 429 on an alert, alert threads and slash commands, against the fake REST + gateway."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

from bot.app import Core
from bot.config import BrandConfig, ParleyConfig
from bot.connectors.catalog import reply_limit
from bot.domain.models import Mention
from bot.domain.states import MentionState, ReplyState
from bot.drafting.base import Drafter, DraftText
from bot.frontends.discord.alerts import thread_name
from bot.frontends.discord.render import clean, pending_text, plain
from bot.services.stats import compute_stats, stats_lines
from bot.settings import Settings
from fakes.discord import ANN, APP_ID, BOB, CHANNEL_ID, FakeDiscord
from tests import discord_harness
from tests.discord_harness import (
    DEFERRED_MESSAGE,
    DEFERRED_UPDATE,
    EPHEMERAL,
    MESSAGE,
    MODAL,
    POSTS,
    alert,
    callback,
    custom_ids,
    running,
    settle,
    text_input,
)
from tests.helpers import mention_reaches, raw

# The fixtures of tests/discord_harness.py (pytest finds fixtures by module attribute).
endpoints = discord_harness.endpoints
fake = discord_harness.fake
dc_settings = discord_harness.dc_settings

_MESSAGE_CALL = re.compile(
    r"/channels/\d+/messages(?:/\d+)?|/webhooks/\d+/[^/]+(?:/messages/(?:@original|\d+))?"
)


def sent_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Every message body the bot sent: posts, edits, follow-ups, answers carrying a message."""
    bodies = []
    for call in fake.calls:
        if call.method in ("POST", "PATCH") and _MESSAGE_CALL.fullmatch(call.path):
            bodies.append(call.body)
        elif call.path.endswith("/callback") and call.body["type"] in (MESSAGE, 7):
            bodies.append(call.body["data"])
    return bodies


def assert_quiet_and_short_ids(fake: FakeDiscord) -> None:
    """No message could ping anyone; every component id fits Discord's 100 characters."""
    bodies = sent_messages(fake)
    assert bodies
    for body in bodies:
        assert body["allowed_mentions"] == {"parse": []}, body
        assert all(len(cid) <= 100 for cid in custom_ids({"components": []} | body))


def field(message: dict[str, Any], name: str) -> str:
    """The value of the alert embed's field whose name starts with ``name``."""
    (embed,) = message["embeds"]
    return str(next(f["value"] for f in embed["fields"] if f["name"].startswith(name)))


async def posted_alert(fake: FakeDiscord, core: Core, mention_id: int) -> str:
    """The id of the message showing a mention's alert (once posted)."""
    await settle(core)
    ref = (await core.store.mentions.get(mention_id)).alert_refs["discord"]
    channel, _, message_id = ref.partition(":")
    assert channel == str(CHANNEL_ID)
    return message_id


# ---- 1. edit through the modal ----------------------------------------------------------------


async def test_edit_modal_prefilled_saves_audited_text_that_approve_posts(
    fake: FakeDiscord,
    dc_settings: Settings,
    config: ParleyConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.connectors.log")
    async with running(dc_settings, config) as (core, _frontend):
        item = raw("bsky-1", "acme cloud sync keeps failing", platform="bluesky")
        (mention,) = await core.alerter.alert(
            await core.ingestor.store_batch([item]), first_poll=False
        )
        await fake.wait_for("POST", POSTS)
        message_id = await posted_alert(fake, core, mention.id)
        drafted = await core.store.drafts.selected(mention.id)
        assert drafted is not None

        click = await fake.click(ANN, message_id, f"p1:ed:{mention.id}")
        modal = await callback(fake, click.id)
        assert modal["type"] == MODAL
        assert re.fullmatch(rf"p1:em:{mention.id}:[0-9a-f]{{8}}", modal["data"]["custom_id"])
        assert modal["data"]["title"] == f"Reply to mention #{mention.id}"
        box = text_input(modal["data"])
        assert box["value"] == drafted.text
        assert (box["style"], box["min_length"]) == (2, 1)
        assert box["max_length"] == reply_limit("bluesky") == 300  # within 4000 too
        assert len(box["custom_id"]) <= 100

        new_text = "Sorry about that! *Fixed* now: please update the app and try again."
        submit = await fake.submit(ANN, click, {box["custom_id"]: new_text})
        assert (await callback(fake, submit.id))["type"] == DEFERRED_UPDATE
        (saved,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/{submit.token}")
        assert saved.body["flags"] == EPHEMERAL
        assert saved.body["content"].startswith(f"Saved as the reply to #{mention.id}.")
        await settle(core)

        draft = await core.store.drafts.selected(mention.id)
        assert draft is not None and draft.text == new_text
        assert draft.origin == "edit:discord:Ann"
        edit = (await core.store.audit.trail("mention", mention.id))[-1]
        assert (edit.action, edit.actor) == ("edit", "discord:Ann")
        assert (edit.before_text, edit.after_text) == (drafted.text, new_text)
        assert field(fake.message(message_id), "✓ Draft") == clean(new_text)

        approve = await fake.click(ANN, message_id, f"p1:ap:{mention.id}")
        assert (await callback(fake, approve.id))["type"] == DEFERRED_UPDATE
        await mention_reaches(core, mention.id, MentionState.APPROVED, MentionState.POSTED)
        await settle(core)
        reply = await core.store.replies.for_mention(mention.id)
        assert reply is not None and reply.state is ReplyState.SENT
        assert reply.text == new_text
        assert f"to mention #{mention.id}: {new_text}" in caplog.text
        assert_quiet_and_short_ids(fake)


# ---- 2. restart: old buttons still work --------------------------------------------------------


async def test_restart_old_alert_buttons_still_work_and_edit_that_message(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        approved, rejected = await alert(core, "acme cloud first", "acme cloud second")
        await fake.wait_for("POST", POSTS, 2)
        messages = {m: await posted_alert(fake, core, m) for m in (approved, rejected)}

    # a new bot and core on the same database file, after the first one stopped
    async with running(dc_settings, config) as (core, frontend):
        assert len(fake.identify_payloads) == 2 and frontend.bot.is_ready()
        restarted = len(fake.calls)
        clicks = [
            await fake.click(ANN, messages[approved], f"p1:ap:{approved}"),
            await fake.click(ANN, messages[rejected], f"p1:rj:{rejected}"),
        ]
        for click in clicks:
            assert (await callback(fake, click.id))["type"] == DEFERRED_UPDATE
        await mention_reaches(core, approved, MentionState.APPROVED, MentionState.POSTED)
        await mention_reaches(core, rejected, MentionState.REJECTED)
        await settle(core)

        assert (await core.store.mentions.get(approved)).state is MentionState.POSTED
        assert (await core.store.mentions.get(rejected)).state is MentionState.REJECTED
        edited = {c.path for c in fake.calls[restarted:] if c.method == "PATCH"}
        assert edited == {f"{POSTS}/{messages[approved]}", f"{POSTS}/{messages[rejected]}"}
        assert len(fake.channel_messages()) == 2  # edited in place, nothing new posted
        for mention_id, decision in ((approved, "approved"), (rejected, "rejected")):
            message = fake.message(messages[mention_id])
            assert f"{decision} by discord:Ann" in field(message, "Status")
            assert message["components"] == []  # decided: no buttons left
        assert_quiet_and_short_ids(fake)


# ---- 3. a slow draft is deferred, then the alert is edited -----------------------------------


class GatedDrafter:
    """Drafts only once the test opens the gate (an LLM taking its time), with new texts."""

    def __init__(self, inner: Drafter) -> None:
        self.inner = inner
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.finished_at = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    async def draft(
        self,
        mention: Mention,
        brand: BrandConfig,
        *,
        variants: int = 3,
        instruction: str | None = None,
    ) -> list[DraftText]:
        self.started.set()
        await self.gate.wait()
        self.finished_at = time.monotonic()
        return [
            DraftText(f"Fresh take {i}: thanks for telling us, we are looking into it.")
            for i in range(1, 3)
        ]


async def test_slow_draft_is_deferred_then_the_alert_shows_the_new_drafts(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        (mid,) = await alert(core, "acme cloud billing question")
        await fake.wait_for("POST", POSTS)
        message_id = await posted_alert(fake, core, mid)
        edits = len(fake.of("PATCH", rf"{POSTS}/{message_id}"))
        slow = GatedDrafter(core.review.drafter)
        core.review.drafter = slow

        click = await fake.click(ANN, message_id, f"p1:dr:{mid}")
        # Answered (Discord allows 3 s) while the draft is still being written: the drafter
        # is held at its gate until after the answer, whatever the machine's load.
        (answer,) = await fake.wait_for("POST", rf"/interactions/{click.id}/[^/]+/callback")
        assert answer.body == {"type": DEFERRED_UPDATE}
        (note,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/{click.token}")
        assert note.body["flags"] == EPHEMERAL
        assert note.body["content"] == f"📝 Drafting #{mid}…"
        await asyncio.wait_for(slow.started.wait(), 30)
        assert len(fake.of("PATCH", rf"{POSTS}/{message_id}")) == edits  # not edited yet

        slow.gate.set()
        edit = (await fake.wait_for("PATCH", rf"{POSTS}/{message_id}", edits + 1))[-1]
        assert answer.at < slow.finished_at < edit.at
        await settle(core)
        message = fake.message(message_id)
        assert field(message, "✓ Draft 4 (selected)").startswith("Fresh take 1:")
        assert field(message, "Draft 5").startswith("Fresh take 2:")
        assert f"p1:ap:{mid}" in custom_ids(message)
        drafts = await core.store.drafts.current(mid)
        assert [d.text[:12] for d in drafts] == ["Fresh take 1", "Fresh take 2"]
        assert_quiet_and_short_ids(fake)


# ---- 4. a 429 on posting an alert -------------------------------------------------------------


async def test_alert_rate_limited_once_is_delivered_once_after_the_retry(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        fake.rate_limit_next("POST", POSTS, retry_after=0.2)
        ids = await alert(core, "acme cloud one", "acme cloud two")
        posts = await fake.wait_for("POST", POSTS, 3)
        message_ids = [await posted_alert(fake, core, m) for m in ids]

        assert len(posts) == 3  # the refused one, its retry, the other alert
        assert posts[1].at - posts[0].at >= 0.2  # Retry-After honoured
        assert posts[0].body == posts[1].body
        messages = fake.channel_messages()
        assert sorted(m["id"] for m in messages) == sorted(message_ids)
        titles = sorted(m["embeds"][0]["title"] for m in messages)
        assert titles == sorted(f"Mention #{m} · Acme Cloud" for m in ids)
        assert not fake.of("POST", rf"{POSTS}/\d+/threads")  # DISCORD_ALERT_THREADS is off
        assert_quiet_and_short_ids(fake)


# ---- 5. a thread per alert ------------------------------------------------------------------


async def test_alert_threads_open_one_thread_per_alert(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    settings = dc_settings.model_copy(update={"discord_alert_threads": True})
    async with running(settings, config) as (core, _frontend):
        (mid,) = await alert(core, "acme cloud is down for @everyone <@&1> since noon")
        (thread,) = await fake.wait_for("POST", rf"{POSTS}/\d+/threads")
        message_id = await posted_alert(fake, core, mid)

        assert thread.path == f"{POSTS}/{message_id}/threads"
        mention = await core.store.mentions.get(mid)
        assert thread.body["name"] == thread_name(mention)
        assert thread.body["auto_archive_duration"] == 1440
        assert thread.body["name"].startswith(f"#{mid} someone: acme cloud is down for")
        assert "@everyone" not in thread.body["name"] and len(thread.body["name"]) <= 100
        assert fake.threads[message_id]["parent_id"] == str(CHANNEL_ID)
        assert len(fake.of("POST", rf"{POSTS}/\d+/threads")) == 1
        assert_quiet_and_short_ids(fake)


# ---- 6. slash commands --------------------------------------------------------------------


def _options(**values: object) -> list[dict[str, Any]]:
    kinds = {str: 3, bool: 5}
    return [{"name": k, "type": kinds[type(v)], "value": v} for k, v in values.items()]


async def test_slash_stats_pending_and_watch_add(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        await alert(core, "acme cloud one", "acme cloud two")
        await fake.wait_for("POST", POSTS, 2)
        await settle(core)

        stats = await fake.slash(BOB, "stats", _options(period="7d"))
        assert await callback(fake, stats.id) == {"type": DEFERRED_MESSAGE}
        (figures,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/{stats.token}")
        expected = stats_lines(await compute_stats(core.store, "7d", None))
        assert expected[0] == "Last 7d: 2 mentions"
        assert figures.body["content"] == plain("```\n" + "\n".join(expected) + "\n```")
        assert figures.files == ["parley-stats.png"]
        assert figures.body["attachments"] == [{"id": 0, "filename": "parley-stats.png"}]
        assert not figures.body.get("flags")

        pending = await fake.slash(BOB, "pending")
        answer = await callback(fake, pending.id)
        assert (answer["type"], answer["data"]["flags"]) == (MESSAGE, EPHEMERAL)
        waiting = await core.alerts.pending(limit=30)
        assert answer["data"]["content"] == pending_text(waiting, 2)

        rule = _options(brand="acme", name="pricing", query="acme (price OR pricing)")
        add = [{"name": "add", "type": 1, "options": rule}]
        refused = await fake.slash(BOB, "watch", add)
        answer = await callback(fake, refused.id)
        assert (answer["type"], answer["data"]["flags"]) == (MESSAGE, EPHEMERAL)
        assert "only approvers" in answer["data"]["content"]
        assert await core.store.controls.rules() == []

        accepted = await fake.slash(ANN, "watch", add)
        answer = await callback(fake, accepted.id)
        assert answer["type"] == MESSAGE and not answer["data"].get("flags")
        assert answer["data"]["content"].startswith("Rule added by Ann:")
        (stored,) = await core.store.controls.rules()
        assert (stored.brand, stored.name, stored.query) == (
            "acme",
            "pricing",
            "acme (price OR pricing)",
        )
        assert stored.added_by == "discord:Ann"
        assert_quiet_and_short_ids(fake)
