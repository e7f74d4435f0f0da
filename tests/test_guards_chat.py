"""Post anyway in the chats: a held edit shows its reasons with a Post anyway button that only an
approver may press, once, and the audit records it. Telegram runs end to end against the fake
Bot API (real PTB Application, real SQLite)."""

from __future__ import annotations

from typing import Any

from bot.config import ParleyConfig
from bot.frontends.telegram.keyboards import MAX_CALLBACK_BYTES, Action, encode
from bot.services.review import POSTED_ANYWAY
from bot.settings import Settings
from fakes.telegram import FakeTelegram
from tests import telegram_harness
from tests.helpers import eventually
from tests.telegram_harness import ANN, BOB, CHAT, alert, running

# The fixtures of tests/telegram_harness.py (pytest finds fixtures by module attribute).
fake = telegram_harness.fake
tg_settings = telegram_harness.tg_settings


HELD_TEXT = "Call us at +1 415 555 2671 or see evil.top"


def latest(fake: FakeTelegram) -> dict[str, Any]:
    return fake.messages[(CHAT, max(k[1] for k in fake.messages if k[0] == CHAT))]


async def edited(fake: FakeTelegram, message_id: int) -> dict[str, Any]:
    """Wait (generously) until the message was edited; its new state."""

    def done() -> bool:
        return any(
            c.params.get("message_id") == str(message_id) for c in fake.of("editMessageText")
        )

    await eventually(done, f"message {message_id} to be edited")
    return fake.messages[(CHAT, message_id)]


async def test_a_held_edit_is_posted_anyway_only_by_an_approver_once(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        (mid,) = await alert(core, "Is acme cloud able to export PDFs?")
        await fake.wait_for("sendMessage")
        await core.settle()
        alert_message = latest(fake)
        await fake.press(ANN, alert_message, encode(Action.EDIT, mid))
        await fake.wait_for("sendMessage", 2)
        await fake.say(ANN, CHAT, HELD_TEXT, reply_to=latest(fake))
        held_call = (await fake.wait_for("sendMessage", 3))[2]
        assert f"Your reply to <b>#{mid}</b> was held" in held_call.params["text"]
        assert "links to evil.top, which is not in allowed_links" in held_call.params["text"]
        assert "gives a phone number (+1 415 555 2671)" in held_call.params["text"]
        assert held_call.callback_data == [encode(Action.POST_ANYWAY, mid)]
        assert len(held_call.callback_data[0].encode()) <= MAX_CALLBACK_BYTES
        held = latest(fake)
        selected = await core.store.drafts.selected(mid)
        assert selected is None or selected.text != HELD_TEXT  # held, not saved

        refused = await fake.press(BOB, held, encode(Action.POST_ANYWAY, mid))
        await fake.wait_for("answerCallbackQuery", 2)
        assert str(fake.answers()[refused]).startswith("Sorry: only approvers can decide")
        selected = await core.store.drafts.selected(mid)
        assert selected is None or selected.text != HELD_TEXT

        kept = await fake.press(ANN, held, encode(Action.POST_ANYWAY, mid))
        await fake.wait_for("answerCallbackQuery", 3)
        assert fake.answers()[kept] == "Kept as you wrote it; the team log records it."
        preview = await edited(fake, held["message_id"])
        assert "kept despite the warnings" in preview["text"]
        draft = await core.store.drafts.selected(mid)
        assert draft is not None and draft.text == HELD_TEXT
        assert any("evil.top" in flag for flag in draft.flags)
        trail = await core.store.audit.trail("mention", mid)
        (anyway,) = [e for e in trail if e.action == POSTED_ANYWAY]
        assert anyway.actor == "telegram:@ann" and "phone number" in (anyway.detail or "")

        again = await fake.press(ANN, held, encode(Action.POST_ANYWAY, mid))
        await fake.wait_for("answerCallbackQuery", 4)
        assert "changed after your edit" in str(fake.answers()[again])
