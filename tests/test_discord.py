"""The Discord frontend: the real discord.py client against a fake REST + gateway on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import discord  # noqa: F401
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import approver_policy
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.domain.states import MentionState, ReplyState
from bot.errors import ConfigError
from bot.frontends.discord import DiscordConfig
from bot.frontends.discord.bot import point_at
from bot.settings import Settings, load_settings
from fakes.discord import (
    ANN,
    APP_ID,
    BOB,
    CHANNEL_ID,
    GUILD_ID,
    FakeDiscord,
)
from tests import discord_harness
from tests.discord_harness import TOKEN, alert, custom_ids, running, settings_with, settle
from tests.helpers import mention_reaches

# The harness's fixtures (pytest finds fixtures by module attribute).
endpoints = discord_harness.endpoints
fake = discord_harness.fake
dc_settings = discord_harness.dc_settings


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
