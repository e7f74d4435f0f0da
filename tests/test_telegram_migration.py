"""A Telegram group upgraded to a supergroup changes its chat id: Parley follows the move.

Either a send is answered ``ChatMigrated`` (400 with ``parameters.migrate_to_chat_id``) or a
service message says ``migrate_to_chat_id``; the alert goes to the new id, the move is stored
(a restart posts to the new id at once), the new chat is the team's chat for the tenancy rules,
and the log and the chat say which setting to update.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from bot.config import ParleyConfig
from bot.settings import Settings
from fakes.telegram import FakeTelegram, chat, user
from tests import telegram_harness
from tests.helpers import eventually
from tests.telegram_harness import CHAT, alert, ask, running

# The fixtures of tests/telegram_harness.py (pytest finds fixtures by module attribute).
fake = telegram_harness.fake
tg_settings = telegram_harness.tg_settings

NEW = -1009999999999
BOB = user(222, "Bob")
"""Not an approver: answered in the team's chat only."""
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"


def moves(settings: Settings) -> list[tuple[str, str]]:
    """The stored moves, read with a connection of the test's own."""
    with sqlite3.connect(settings.parley_db_path) as db:
        return list(db.execute("SELECT old_id, new_id FROM chat_migrations"))


def sent_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    """The texts of every sendMessage to one chat."""
    return [c.params["text"] for c in fake.of("sendMessage") if c.params["chat_id"] == str(chat_id)]


async def test_a_send_answered_chat_migrated_moves_the_alerts_and_the_team_chat(
    fake: FakeTelegram,
    tg_settings: Settings,
    config: ParleyConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.fail_next("sendMessage", 400, UPGRADED, migrate_to_chat_id=NEW)
    async with running(tg_settings, config, fake) as (core, _frontend):
        (first,) = await alert(core, "Acme Cloud is lovely, how do I export?")
        await core.settle()
        assert len(sent_to(fake, CHAT)) == 1  # the refused attempt
        alerts = [t for t in sent_to(fake, NEW) if f"Mention #{first}" in t]
        assert len(alerts) == 1, fake.of("sendMessage")
        (told,) = [t for t in sent_to(fake, NEW) if "supergroup" in t]
        assert f"set TELEGRAM_ALERT_CHAT_ID in .env to {NEW}" in told
        assert moves(tg_settings) == [(str(CHAT), str(NEW))]
        # The new chat is the team's chat: a non-approver is answered there.
        assert "add your user id" not in await ask(fake, BOB, NEW, "/pending")
    assert f"changed from {CHAT} to {NEW}" in caplog.text

    async with running(tg_settings, config, fake) as (core, _frontend):
        before = len(sent_to(fake, CHAT))
        (second,) = await alert(core, "acme is down again")
        await core.settle()
        assert any(f"Mention #{second}" in t for t in sent_to(fake, NEW))
        assert len(sent_to(fake, CHAT)) == before  # the old id is not tried any more


async def test_a_migrate_to_chat_id_message_is_followed(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        await fake.push_update(
            {
                "message": {
                    "message_id": 5,
                    "date": int(time.time()),
                    "chat": {**chat(CHAT), "type": "group"},
                    "migrate_to_chat_id": NEW,
                }
            }
        )

        async def moved() -> bool:
            return moves(tg_settings) == [(str(CHAT), str(NEW))]

        await eventually(moved, "the move to be stored")
        (mention,) = await alert(core, "Acme Cloud is lovely")
        await core.settle()
        assert any(f"Mention #{mention}" in t for t in sent_to(fake, NEW))
        assert not sent_to(fake, CHAT)
