"""The Discord frontend: the real discord.py client against a fake REST + gateway on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord  # noqa: F401
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import Core, approver_policy, build_core, run_core
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.domain.states import MentionState, ReplyState
from bot.errors import ConfigError
from bot.frontends.discord import DiscordConfig, DiscordFrontend
from bot.frontends.discord.bot import point_at
from bot.settings import Settings, load_settings
from tests.conftest import ROOT
from tests.fake_discord import (
    ANN,
    APP_ID,
    APPROVER_ROLE_ID,
    BOB,
    CHANNEL_ID,
    GUILD_ID,
    FakeDiscord,
)
from tests.helpers import eventually, mention_reaches, raw

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.Gx-fake.secret-discord-token_0123456789"


@pytest.fixture(autouse=True)
def endpoints() -> Iterator[None]:
    """discord.py's endpoints are class attributes: restore them after each test."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


def settings_with(tmp_path: Path, **values: object) -> Settings:
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        **values,  # type: ignore[arg-type]
    )


def test_settings_config_and_approver_roles(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        discord_bot_token=TOKEN,
        discord_guild_id="42",
        discord_alert_channel_id="4242",
        discord_approver_role_ids=" 7, 8 ",
        discord_alert_threads="true",
    )
    assert settings.discord_configured()
    config = DiscordConfig.from_settings(settings)
    assert (config.guild_id, config.alert_channel_id, config.alert_threads) == (42, 4242, True)
    assert config.api_base_url == "https://discord.com/api/v10"
    assert config.gateway_url == "wss://gateway.discord.gg/"
    assert TOKEN not in repr(config) and TOKEN not in repr(settings)

    policy = approver_policy(settings)
    approver = Actor(platform="discord", user_id="1", display_name="a", roles=frozenset({"8"}))
    member = Actor(platform="discord", user_id="2", display_name="b", roles=frozenset({"9"}))
    elsewhere = Actor(platform="telegram", user_id="3", display_name="c", roles=frozenset({"8"}))
    assert policy.is_approver(approver)
    assert not policy.is_approver(member)
    assert not policy.is_approver(elsewhere)


def test_discord_off_without_token_and_bad_values_named(tmp_path: Path) -> None:
    assert not settings_with(tmp_path).discord_configured()
    assert not settings_with(tmp_path, discord_bot_token="  ").discord_configured()
    with pytest.raises(ValueError, match="DISCORD_BOT_TOKEN"):
        DiscordConfig.from_settings(settings_with(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            discord_approver_role_ids="7,admins",
            discord_gateway_url="http://not-a-websocket/",
            discord_bot_token=TOKEN,
        )
    problems = "\n".join(caught.value.problems)
    assert "DISCORD_APPROVER_ROLE_IDS" in problems and "DISCORD_GATEWAY_URL" in problems
    assert TOKEN not in problems


def test_point_at_sets_rest_base_and_gateway() -> None:
    point_at("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gateway/")
    assert Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway/"


# ---- the real client through the fake (needs the cogs) -----------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def dc_settings(tmp_path: Path, fake: FakeDiscord) -> Settings:
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
    batch = await core.ingestor.store_batch(
        [raw(f"d{i}-{hash(t) & 0xFFFF}", t) for i, t in enumerate(texts)]
    )
    return [m.id for m in await core.alerter.alert(batch, first_poll=False)]


async def settle(core: Core) -> None:
    await core.settle()  # outbox, events and the Discord alert delivery


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def test_connects_with_guild_intent_only_and_syncs_commands(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (_core, frontend):
        (identify,) = fake.identify_payloads
        assert identify["intents"] == 1  # GUILDS only: no privileged intent
        assert identify["token"] == TOKEN
        (sync,) = fake.of("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
        names = {c["name"] for c in sync.body}
        assert {"stats", "pending", "queue", "mention", "watch", "pause", "resume"} <= names
        for command in sync.body:
            assert 1 <= len(command["description"]) <= 100
            for option in command.get("options", []):
                assert 1 <= len(option["description"]) <= 100
        stats = next(c for c in sync.body if c["name"] == "stats")
        period = next(o for o in stats["options"] if o["name"] == "period")
        assert {ch["value"] for ch in period["choices"]} >= {"24h", "7d", "30d"}
        assert not fake.of("PUT", rf"/applications/{APP_ID}/commands")
        assert len(frontend.bot.synced) == len(sync.body)


async def test_alert_embed_defused_then_approve_edits_and_posts(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        text = "acme cloud is **down** @everyone <@&1> ping _now_"
        (mid,) = await alert(core, text)
        (post,) = await fake.wait_for("POST", rf"/channels/{CHANNEL_ID}/messages")
        await settle(core)
        assert post.body["allowed_mentions"] == {"parse": []}
        (embed,) = post.body["embeds"]
        assert "\\*\\*down\\*\\*" in embed["description"]
        assert len(embed["description"]) <= 4096
        assert all(len(cid) <= 100 for cid in custom_ids(post.body))
        mention = await core.store.mentions.get(mid)
        _, _, message_id = mention.alert_refs["discord"].partition(":")
        assert f"p1:ap:{mid}" in custom_ids(fake.message(message_id))  # drafted: edited in

        click = await fake.click(ANN, message_id, f"p1:ap:{mid}")
        await fake.wait_for("POST", rf"/interactions/{click.id}/[^/]+/callback")
        await mention_reaches(core, mid, MentionState.APPROVED, MentionState.POSTED)
        await settle(core)
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert reply.approved_by.startswith("discord:")
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        edits = fake.of("PATCH", rf"/channels/{CHANNEL_ID}/messages/{message_id}") + [
            c for c in fake.calls if c.method == "PATCH" and c.path.startswith("/webhooks/")
        ]
        assert edits and all(
            e.body.get("allowed_mentions", {"parse": []}) == {"parse": []} for e in edits
        )
        assert "Ann" in json.dumps(fake.message(message_id)["embeds"])


async def test_non_approver_forged_id_and_double_click_queue_one_reply(
    fake: FakeDiscord, dc_settings: Settings, config: ParleyConfig
) -> None:
    async with running(dc_settings, config) as (core, _frontend):
        (mid,) = await alert(core, "acme cloud question")
        await fake.wait_for("POST", rf"/channels/{CHANNEL_ID}/messages")
        await settle(core)
        ref = (await core.store.mentions.get(mid)).alert_refs["discord"]
        message_id = ref.partition(":")[2]

        bob = await fake.click(BOB, message_id, f"p1:ap:{mid}")
        forged = await fake.click(ANN, fake.plant("p1:ap:99999"), "p1:ap:99999")
        for interaction in (bob, forged):
            await fake.wait_for("POST", rf"/interactions/{interaction.id}/[^/]+/callback")
        await settle(core)
        assert await core.store.replies.for_mention(mid) is None
        for interaction in (bob, forged):
            first = fake.callbacks(interaction.id)[0].body
            sent = [first, *(c.body for c in fake.followups(interaction.token))]
            assert any((b.get("data", b).get("flags") or 0) & 64 for b in sent)

        first, second = (
            await fake.click(ANN, message_id, f"p1:ap:{mid}"),
            await fake.click(ANN, message_id, f"p1:ap:{mid}"),
        )
        for interaction in (first, second):
            await fake.wait_for("POST", rf"/interactions/{interaction.id}/[^/]+/callback")
        await mention_reaches(core, mid, MentionState.APPROVED, MentionState.POSTED)
        await settle(core)
        replies = await core.store.replies.in_states(list(ReplyState))
        assert len([r for r in replies if r.mention_id == mid]) == 1
