"""Tenancy on Discord: an agency with two clients, each in its own channel of the team's server,
plus the default alert channel; per-brand approver roles; other servers and DMs refused; and
`parley check` asking for DISCORD_GUILD_ID. The real discord.py client runs against the fake
REST + gateway on loopback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core
from bot.domain.states import MentionState
from bot.preflight import OWN_PREFIXES
from bot.settings import Settings
from fakes.discord import (
    ANN,
    BOB,
    MEMBER_ROLE_ID,
    FakeDiscord,
    member,
    user,
)
from tests import cli_harness, discord_harness
from tests.agency import ACME_ROLE, CHANNEL_A, CHANNEL_B, SECRET_A, SECRET_B, agency
from tests.discord_harness import callback, running, settle
from tests.helpers import mention_reaches, raw

endpoints = discord_harness.endpoints  # fixtures, found by module attribute
fake = discord_harness.fake
dc_settings = discord_harness.dc_settings

CARA = user(333, "Cara")
"""Holds acme's approver role only."""
FOREIGN_GUILD = 900000000000009999
MESSAGE = 4
EPHEMERAL = 64


@pytest.fixture
def agency_fake(fake: FakeDiscord) -> FakeDiscord:
    """The team's server with a channel per client and acme's approver role."""
    fake.channels.update({CHANNEL_A: "acme-client", CHANNEL_B: "globex-client"})
    fake.roles[ACME_ROLE] = "acme approvers"
    fake.members.append(member(CARA, [ACME_ROLE, MEMBER_ROLE_ID]))
    return fake


async def answer(fake: FakeDiscord, interaction_id: str) -> str:
    """The text an interaction was answered with, which must be ephemeral."""
    body = await callback(fake, interaction_id)
    assert body["type"] == MESSAGE and body["data"]["flags"] == EPHEMERAL, body
    return str(body["data"]["content"])


def said_in(fake: FakeDiscord, channel: int) -> str:
    """Everything the bot posted in a channel (messages, embeds), as one text."""
    return repr(fake.channel_messages(channel))


async def alerts(core: Core) -> tuple[int, int, str, str]:
    """One mention per client, alerted; their ids and alert message ids."""
    batch = await core.ingestor.store_batch([raw("a-1", SECRET_A), raw("b-1", SECRET_B)])
    acme, globex = [m.id for m in await core.alerter.alert(batch, first_poll=False)]
    await settle(core)
    refs = [(await core.store.mentions.get(i)).alert_refs["discord"] for i in (acme, globex)]
    assert refs[0].startswith(f"{CHANNEL_A}:") and refs[1].startswith(f"{CHANNEL_B}:")
    return acme, globex, refs[0].partition(":")[2], refs[1].partition(":")[2]


def option(name: str, value: Any, kind: int = 3) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value}


async def test_a_client_channel_sees_only_its_brand(
    agency_fake: FakeDiscord, dc_settings: Settings
) -> None:
    fake = agency_fake
    async with running(dc_settings, agency()) as (core, _frontend):
        acme, globex, _, _ = await alerts(core)

        async def ask(who: dict[str, Any], name: str, *options: dict[str, Any]) -> str:
            slash = await fake.slash(who, name, list(options), channel_id=CHANNEL_A)
            return await answer(fake, slash.id)

        pending = await ask(BOB, "pending")
        assert f"**#{acme}**" in pending and f"**#{globex}**" not in pending
        team = await answer(fake, (await fake.slash(BOB, "pending")).id)  # the default channel
        assert f"**#{acme}**" in team and f"**#{globex}**" in team
        assert "unknown brand 'globex'" in await ask(BOB, "pending", option("brand", "globex"))
        refused = await ask(ANN, "stats", option("period", "24h"), option("brand", "globex"))
        assert "unknown brand 'globex'" in refused
        assert "team's own chat only" in await ask(ANN, "sources")
        watch = await ask(BOB, "watch", {"name": "list", "type": 1, "options": []})
        assert "acme" in watch and "globex" not in watch
        assert f"no mention #{globex}" in await ask(ANN, "mention", option("id", globex, 4))
        moved = await ask(BOB, "mention", option("id", acme, 4))
        assert "only approvers can bring an alert here" in moved
    assert "GLOBEX-SECRET-2" not in said_in(fake, CHANNEL_A)
    assert "ACME-SECRET-1" not in said_in(fake, CHANNEL_B)


async def test_brand_approver_role_other_servers_and_dms(
    agency_fake: FakeDiscord, dc_settings: Settings
) -> None:
    fake = agency_fake
    async with running(dc_settings, agency()) as (core, _frontend):
        acme, globex, alert_a, alert_b = await alerts(core)

        not_hers = await fake.click(CARA, alert_b, f"p1:ap:{globex}", channel_id=CHANNEL_B)
        assert "only approvers can decide" in await answer(fake, not_hers.id)

        foreign = await fake.click(
            ANN, alert_a, f"p1:ap:{acme}", channel_id=CHANNEL_A, guild_id=FOREIGN_GUILD
        )
        assert "works for one team's server only" in await answer(fake, foreign.id)
        dm = await fake.slash(ANN, "pending", channel_id=12345, guild_id=None)
        assert "only in its team's Discord server" in await answer(fake, dm.id)
        elsewhere = await fake.slash(ANN, "pending", channel_id=54321, guild_id=FOREIGN_GUILD)
        assert "works for one team's server only" in await answer(fake, elsewhere.id)
        assert await core.store.replies.for_mention(acme) is None

        hers = await fake.click(CARA, alert_a, f"p1:ap:{acme}", channel_id=CHANNEL_A)
        assert (await callback(fake, hers.id))["type"] == 6  # deferred, then approved
        await mention_reaches(core, acme, MentionState.APPROVED, MentionState.POSTED)
        await settle(core)
        reply = await core.store.replies.for_mention(acme)
        assert reply is not None and reply.approved_by == "discord:Cara"
        assert await core.store.replies.for_mention(globex) is None


def test_check_requires_the_server_id_with_discord(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parley.toml").write_text(cli_harness.BRAND, encoding="utf-8")
    dotenv = "DISCORD_BOT_TOKEN=abc.def.ghi\nDISCORD_APPROVER_ROLE_IDS=7\n"
    (line,) = cli_harness.refused(capsys, dotenv=dotenv)
    assert line.startswith("environment/.env: DISCORD_BOT_TOKEN is set but DISCORD_GUILD_ID is not")
    assert "Copy Server ID" in line
