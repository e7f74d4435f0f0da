"""Tenancy: an agency with two clients, each in its own Telegram chat, plus the team's default
chat; per-brand approvers; "admins are approvers" failing closed. The real PTB client runs
against the fake Bot API on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, approver_policy
from bot.config import parse_config
from bot.domain.models import Actor
from bot.errors import ConfigError, NotFound, PermissionDenied
from bot.frontends.telegram import TelegramFrontend
from bot.frontends.telegram import frontend as telegram_frontend
from bot.frontends.telegram.keyboards import Action, encode
from bot.services.tenancy import Place, Tenancy
from bot.settings import Settings
from fakes.telegram import FakeTelegram, user
from tests import telegram_harness
from tests.agency import ACME_ROLE, CHANNEL_B, CHAT_A, CHAT_B, SECRET_A, SECRET_B, agency
from tests.helpers import raw
from tests.telegram_harness import TOKEN, ask, running

fake = telegram_harness.fake  # the fixture (pytest finds fixtures by module attribute)

TEAM = -1001000000000
STRANGER_CHAT = -1009999999999
ANN = user(111, "Ann", "ann")
"""A global approver (TELEGRAM_APPROVER_IDS)."""
BOB = user(222, "Bob")
"""A member of the client chats, approving nothing."""
CARA = user(333, "Cara", "cara")
"""Acme's own approver (parley.toml), not Globex's."""


def actor(user_id: str, platform: str = "telegram", roles: frozenset[str] = frozenset()) -> Actor:
    return Actor(platform=platform, user_id=user_id, roles=roles)


# ---- the rules, without any chat --------------------------------------------------------------


def test_brand_approvers_add_to_the_global_ones(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        parley_db_path=tmp_path / "p.db",
        telegram_approver_ids="111",
        discord_approver_role_ids="7",
    )
    policy = approver_policy(settings, agency())
    cara, ann = actor("333"), actor("111")
    acme_role = actor("5", "discord", frozenset({str(ACME_ROLE)}))
    assert policy.is_approver(cara, "acme") and not policy.is_approver(cara, "globex")
    assert not policy.is_approver(cara)  # team-wide actions stay with the global approvers
    assert policy.is_approver(acme_role, "acme") and not policy.is_approver(acme_role, "globex")
    assert policy.is_approver(ann, "globex") and policy.is_approver(ann)
    assert policy.approved_brands(cara) == frozenset({"acme"})
    assert policy.approved_brands(ann) is None
    assert policy.approved_brands(actor("222")) == frozenset()


def test_approvers_ids_are_checked_in_parley_toml() -> None:
    data: dict[str, Any] = {
        "brands": [
            {
                "name": "acme",
                "rules": [{"name": "r", "query": "acme"}],
                "approvers": {"telegram_user_ids": [-5], "discord_roles": [1]},
            }
        ]
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "parley.toml")
    problems = "\n".join(caught.value.problems)
    assert "brands[0].approvers.telegram_user_ids: an id is a positive number" in problems
    assert "brands[0].approvers.discord_roles: unknown setting" in problems


async def test_which_brands_each_place_sees(core: Core) -> None:
    tenancy = Tenancy(
        agency(),
        approver_policy(
            core.settings.model_copy(update={"telegram_approver_ids": "111"}), agency()
        ),
        core.store,
        {"telegram": TEAM, "discord": 42},
    )
    bob, cara, ann = actor("222"), actor("333"), actor("111")
    assert tenancy.scope(Place("telegram", (CHAT_A,)), bob) == frozenset({"acme"})
    assert tenancy.scope(Place("telegram", (CHAT_A,)), ann) == frozenset(
        {"acme"}
    )  # the place decides
    assert tenancy.scope(Place("telegram", (TEAM,)), bob) is None
    assert tenancy.scope(Place("console"), bob) is None
    assert tenancy.scope(Place("discord", (77, CHANNEL_B), team_space=True), bob) == frozenset(
        {"globex"}
    )
    assert tenancy.scope(Place("discord", (77,), team_space=True), bob) is None
    assert tenancy.scope(Place("telegram", (STRANGER_CHAT,)), cara) == frozenset({"acme"})
    assert tenancy.scope(Place("telegram", (STRANGER_CHAT,)), ann) is None
    with pytest.raises(PermissionDenied, match=r"add your user id \(222\)"):
        tenancy.scope(Place("telegram", (STRANGER_CHAT,)), bob)
    with pytest.raises(NotFound, match="unknown brand 'globex'; brands here: acme"):
        tenancy.brand(frozenset({"acme"}), "globex")
    with pytest.raises(NotFound, match=r"unknown brand 'nope'; brands here: acme$"):
        tenancy.brand(frozenset({"acme"}), "nope")
    assert tenancy.only_brand(frozenset({"acme"}), None) == "acme"
    with pytest.raises(NotFound, match="follows acme, globex: name one"):
        tenancy.only_brand(frozenset({"acme", "globex"}), None)
    with pytest.raises(PermissionDenied, match="team's own chat only"):
        tenancy.require_team(frozenset({"acme"}), "source health")


# ---- Telegram, end to end ---------------------------------------------------------------------


@pytest.fixture
def agency_settings(tmp_path: Path, fake: FakeTelegram) -> Settings:
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=Path(__file__).resolve().parent.parent / "prompts",
        parley_default_publisher="log",
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_alert_chat_id=str(TEAM),
        telegram_approver_ids="111",
    )


async def two_alerts(core: Core, frontend: TelegramFrontend) -> tuple[int, int]:
    batch = await core.ingestor.store_batch([raw("a-1", SECRET_A), raw("b-1", SECRET_B)])
    acme, globex = [m.id for m in await core.alerter.alert(batch, first_poll=False)]
    await core.settle()
    return acme, globex


def texts_in(fake: FakeTelegram, chat_id: int) -> list[str]:
    """Every text and caption the bot sent or edited in one chat."""
    return [
        c.params.get("text") or c.params.get("caption") or ""
        for c in fake.calls
        if c.params.get("chat_id") == str(chat_id)
    ]


async def test_a_client_chat_sees_only_its_brand(
    fake: FakeTelegram, agency_settings: Settings
) -> None:
    async with running(agency_settings, agency(), fake) as (core, frontend):
        acme, globex = await two_alerts(core, frontend)
        assert any("ACME-SECRET-1" in t for t in texts_in(fake, CHAT_A))
        assert any("GLOBEX-SECRET-2" in t for t in texts_in(fake, CHAT_B))

        pending = await ask(fake, BOB, CHAT_A, "/pending")
        assert f"#{acme}</b>" in pending and f"#{globex}</b>" not in pending
        team = await ask(fake, BOB, TEAM, "/pending")
        assert f"#{acme}</b>" in team and f"#{globex}</b>" in team
        assert "unknown brand 'globex'" in await ask(fake, BOB, CHAT_A, "/pending globex")
        assert "unknown brand 'globex'" in await ask(fake, ANN, CHAT_A, "/stats 24h globex")
        assert "Last 24h for acme: 1 mentions" in await ask(fake, BOB, CHAT_A, "/stats")
        assert "team's own chat only" in await ask(fake, ANN, CHAT_A, "/sources")
        watch = await ask(fake, BOB, CHAT_A, "/watch list")
        assert "acme/any" in watch and "globex" not in watch
        assert f"no mention #{globex}" in await ask(fake, ANN, CHAT_A, f"/mention {globex}")
        refused = await ask(fake, BOB, CHAT_A, f"/mention {acme}")
        assert "only approvers can bring an alert here" in refused

        assert "add your user id (222)" in await ask(fake, BOB, STRANGER_CHAT, "/pending")
        mine = await ask(fake, CARA, STRANGER_CHAT, "/pending")  # acme's approver, elsewhere
        assert f"#{acme}</b>" in mine and f"#{globex}</b>" not in mine

        moved = await ask(fake, CARA, CHAT_A, f"/mention {acme}")
        assert "ACME-SECRET-1" in moved
        ref = (await core.store.mentions.get(acme)).alert_refs["telegram"]
        assert ref.startswith(f"{CHAT_A}:")
    assert not any("GLOBEX-SECRET-2" in t for t in texts_in(fake, CHAT_A))
    assert not any("ACME-SECRET-1" in t for t in texts_in(fake, CHAT_B))


async def test_a_brand_approver_decides_on_that_brand_only(
    fake: FakeTelegram, agency_settings: Settings
) -> None:
    async with running(agency_settings, agency(), fake) as (core, frontend):
        acme, globex = await two_alerts(core, frontend)
        ref_a = (await core.store.mentions.get(acme)).alert_refs["telegram"]
        ref_b = (await core.store.mentions.get(globex)).alert_refs["telegram"]
        alert_a = fake.messages[(CHAT_A, int(ref_a.rpartition(":")[2]))]
        alert_b = fake.messages[(CHAT_B, int(ref_b.rpartition(":")[2]))]

        not_hers = await fake.press(CARA, alert_b, encode(Action.APPROVE, globex))
        forged = await fake.press(CARA, alert_a, encode(Action.APPROVE, globex))
        hers = await fake.press(CARA, alert_a, encode(Action.APPROVE, acme))
        await fake.wait_for("answerCallbackQuery", 3, within=30)
        answers = fake.answers()
        assert str(answers[not_hers]).startswith("Sorry: only approvers can decide")
        assert answers[forged] == f"Sorry: no mention #{globex}."
        assert answers[hers] == "Approved: the reply is queued for posting."
        assert "only approvers can redraft" in await ask(fake, CARA, CHAT_B, f"/redraft {globex} x")
        assert "only approvers can pause" in await ask(fake, CARA, CHAT_A, "/pause")

        ann = await fake.press(ANN, alert_b, encode(Action.APPROVE, globex))
        await fake.wait_for("answerCallbackQuery", 4, within=30)
        assert fake.answers()[ann] == "Approved: the reply is queued for posting."
        await core.settle()
        assert (await core.store.replies.for_mention(acme)) is not None
        assert (await core.store.replies.for_mention(globex)) is not None
        trail = await core.store.audit.trail("mention", acme)
        assert any(e.action == "approve" and e.actor == "telegram:@cara" for e in trail)


async def test_admins_fail_closed_while_telegram_cannot_list_them(
    fake: FakeTelegram, agency_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_frontend, "_ADMIN_CACHE_SECONDS", 0.0)  # always ask
    fake.admins[TEAM] = [ANN]
    settings = agency_settings.model_copy(update={"telegram_approver_ids": "admins"})
    async with running(settings, agency(), fake) as (core, _frontend):
        batch = await core.ingestor.store_batch(
            [raw("t-1", "acme one"), raw("t-2", "acme two"), raw("t-3", "acme three")]
        )
        ids = [m.id for m in await core.alerter.alert(batch, first_poll=False)]
        await core.settle()
        alerts = [
            fake.messages[(CHAT_A, int(ref.rpartition(":")[2]))]
            for ref in [(await core.store.mentions.get(i)).alert_refs["telegram"] for i in ids]
        ]
        first = await fake.press(ANN, alerts[0], encode(Action.APPROVE, ids[0]))
        await fake.wait_for("answerCallbackQuery", 1, within=30)
        fake.fail_next("getChatAdministrators", 500, "Internal Server Error")
        during = await fake.press(ANN, alerts[1], encode(Action.APPROVE, ids[1]))
        await fake.wait_for("answerCallbackQuery", 2, within=30)
        after = await fake.press(ANN, alerts[2], encode(Action.APPROVE, ids[2]))
        await fake.wait_for("answerCallbackQuery", 3, within=30)
        answers = fake.answers()
        assert answers[first] == "Approved: the reply is queued for posting."
        assert str(answers[during]).startswith("Sorry: only approvers can decide")
        assert answers[after] == "Approved: the reply is queued for posting."
        assert len(fake.of("getChatAdministrators")) >= 3
        assert await core.store.replies.for_mention(ids[1]) is None
