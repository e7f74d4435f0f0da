"""The Discord frontend's test harness: the fake REST + gateway fixture and settings for it, a
core and frontend running as `parley run` does, alerting mentions, and the interaction callback
types and helpers several modules assert on.

Modules take the fixtures over by assignment (``fake = discord_harness.fake``); ``endpoints``
restores discord.py's class-level endpoints after each test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import Core, build_core, run_core
from bot.config import ParleyConfig
from bot.frontends.discord import DiscordConfig, DiscordFrontend
from bot.settings import Settings
from fakes.discord import APPROVER_ROLE_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.conftest import ROOT
from tests.helpers import eventually, raw

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.Gx-fake.secret-discord-token_0123456789"


@pytest.fixture(autouse=True)
def endpoints() -> Iterator[None]:
    """discord.py's endpoints are class attributes: restore them after each test."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


def settings_with(tmp_path: Path, **values: object) -> Settings:
    """Settings on a temporary database with the repository's prompts, plus ``values``."""
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        **values,  # type: ignore[arg-type]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord REST API and gateway on loopback for :data:`TOKEN`."""
    server = FakeDiscord(TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def dc_settings(tmp_path: Path, fake: FakeDiscord) -> Settings:
    """Settings for the fake: its guild, alert channel and approver role."""
    return settings_with(
        tmp_path,
        parley_default_publisher="log",
        discord_bot_token=TOKEN,
        discord_guild_id=str(GUILD_ID),
        discord_alert_channel_id=str(CHANNEL_ID),
        discord_approver_role_ids=str(APPROVER_ROLE_ID),
        discord_api_base_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
    )


@asynccontextmanager
async def running(
    settings: Settings, config: ParleyConfig
) -> AsyncIterator[tuple[Core, DiscordFrontend]]:
    """Core + Discord frontend as `parley run` runs them, stopped cleanly at the end."""
    async with build_core(settings, config) as core:
        frontend = DiscordFrontend(
            core, DiscordConfig.from_settings(settings), guild_ready_timeout=0.05
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [frontend], stop))

        async def ready() -> bool:
            # The bot exists at once, its client session only once run; on a loaded machine
            # the guild can arrive after the short guild_ready_timeout has made it "ready".
            return frontend.bot.is_ready() and frontend.bot.get_guild(GUILD_ID) is not None

        await eventually(ready, "the Discord bot to be ready with its guild")
        try:
            yield core, frontend
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)  # a loaded CI machine can be slow to shut down


async def alert(core: Core, *texts: str) -> list[int]:
    """Store one mention per text and alert them; their ids."""
    batch = await core.ingestor.store_batch(
        [raw(f"d{i}-{hash(t) & 0xFFFF}", t) for i, t in enumerate(texts)]
    )
    return [m.id for m in await core.alerter.alert(batch, first_poll=False)]


async def settle(core: Core) -> None:
    """Wait until the outbox, the events and the Discord alert delivery are idle."""
    await core.settle()  # outbox, events and the Discord alert delivery


def custom_ids(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's components, row by row."""
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


POSTS = rf"/channels/{CHANNEL_ID}/messages"
"""The path of a message posted in the alert channel."""
DEFERRED_MESSAGE = 5
DEFERRED_UPDATE = 6
MESSAGE = 4
MODAL = 9
EPHEMERAL = 64
"""Interaction callback types, and the ephemeral message flag."""


async def callback(fake: FakeDiscord, interaction_id: str) -> dict[str, Any]:
    """The one interaction callback for an interaction (waits for it)."""
    (call,) = await fake.wait_for("POST", rf"/interactions/{interaction_id}/[^/]+/callback")
    body: dict[str, Any] = call.body
    return body


def text_input(modal: dict[str, Any]) -> dict[str, Any]:
    """The modal's only text input, in an action row or a label."""
    inputs: list[dict[str, Any]] = []
    for component in modal["components"]:
        inner = component.get("components") or [component.get("component")]
        inputs += [c for c in inner if c and c["type"] == 4]
    (found,) = inputs
    return found
