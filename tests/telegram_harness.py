"""The Telegram frontend's test harness: the fake Bot API fixture and settings for it, a core
and frontend running as `parley run` does, alerting mentions, and the team chat's people.

Modules take the fixtures over by assignment (``fake = telegram_harness.fake``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, build_core, run_core
from bot.config import ParleyConfig
from bot.frontends.telegram import TelegramConfig, TelegramFrontend
from bot.settings import Settings
from fakes.telegram import Call, FakeTelegram, user
from tests.conftest import ROOT
from tests.helpers import MODEL_CHAT_ID, MODEL_CHAT_TOKEN, eventually, raw

TOKEN = MODEL_CHAT_TOKEN
CHAT = MODEL_CHAT_ID
ANN = user(111, "Ann", "ann")
"""An approver."""
BOB = user(222, "Bob")
"""In the team chat, not an approver."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API on loopback for :data:`TOKEN`."""
    server = FakeTelegram(TOKEN)
    await server.start()
    yield server
    await server.stop()


def text_of(fake: FakeTelegram, ref: str) -> str:
    """The current text of the message an alert reference (``chat:message``) names."""
    chat, _, message_id = ref.rpartition(":")
    return str(fake.messages[(int(chat), int(message_id))]["text"])


@pytest.fixture
def tg_settings(tmp_path: Path, fake: FakeTelegram) -> Settings:
    """Settings on a temporary database for the fake Bot API: the alert chat, ANN approves."""
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        parley_default_publisher="log",
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_alert_chat_id=str(CHAT),
        telegram_approver_ids="111",
    )


@asynccontextmanager
async def running(
    settings: Settings, config: ParleyConfig, fake: FakeTelegram, **options: Any
) -> AsyncIterator[tuple[Core, TelegramFrontend]]:
    """Core + Telegram frontend running as `parley run` does, stopped cleanly at the end."""
    async with build_core(settings, config) as core:
        frontend = TelegramFrontend(core, TelegramConfig.from_settings(settings), **options)
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [frontend], stop))
        if settings.telegram_webhook_url:
            await fake.wait_for("setWebhook")
        else:
            await fake.wait_for("getUpdates", len(fake.of("getUpdates")) + 1)
        try:
            yield core, frontend
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)  # a loaded CI machine can be slow to shut down


async def alert(core: Core, *texts: str, handle: str = "bob") -> list[int]:
    """Store one mention per text (by ``handle``) and alert them; their ids."""
    batch = await core.ingestor.store_batch(
        [raw(f"x{i}-{hash(t) & 0xFFFF}", t, handle=handle) for i, t in enumerate(texts)]
    )
    return [m.id for m in await core.alerter.alert(batch, first_poll=False)]


def message_of(fake: FakeTelegram, core_ref: str) -> dict[str, Any]:
    """The fake's message that a core alert reference (``chat:message_id``) points at."""
    chat, _, message_id = core_ref.rpartition(":")
    return fake.messages[(int(chat), int(message_id))]


async def ask(fake: FakeTelegram, who: dict[str, Any], chat_id: int, text: str) -> str:
    """Send a command and return the bot's answer (a text, or a photo's caption)."""

    def answers() -> list[Call]:
        return [c for c in fake.calls if c.method in ("sendMessage", "sendPhoto")]

    count = len(answers())
    await fake.say(who, chat_id, text)

    async def answered() -> bool:
        return len(answers()) > count

    await eventually(answered, f"an answer to {text!r}")
    sent = answers()[count]
    return sent.params.get("text") or sent.params.get("caption") or ""
