"""Discord components and commands: custom ids, the components per state, the command tree."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands
from pydantic import SecretStr

from bot.app import Core
from bot.domain.models import Reply, utcnow
from bot.domain.states import MentionState, ReplyState
from bot.frontends.discord.bot import DiscordConfig, ParleyBot
from bot.frontends.discord.views import (
    BUTTON_TEMPLATE,
    DYNAMIC_ITEMS,
    STALE_TEMPLATE,
    TWEAK_TEMPLATE,
    VARIANT_TEMPLATE,
    Action,
    ReviewButton,
    StaleComponent,
    VariantSelect,
    alert_components,
    button_id,
    tweak_select_id,
    variant_select_id,
)
from cogs import EXTENSIONS
from cogs.review import Review, modal_max_length
from cogs.stats import Stats
from cogs.watch import Watch
from tests.helpers import drafted_mention, drafts


def parse_custom_id(custom_id: str) -> tuple[str, int] | None:
    """``(action code, mention id)`` as the persistent items' templates read a custom id
    (``vs``/``tw`` for the selects), or None for anything they would not match."""
    for template in (BUTTON_TEMPLATE, VARIANT_TEMPLATE, TWEAK_TEMPLATE):
        match = re.fullmatch(template, custom_id)
        if match is not None:
            action = match.groupdict().get("action") or custom_id.split(":")[1]
            return action, int(match["id"])
    return None


BIGGEST_ID = 999_999_999_999


def current_ids(mention_id: int) -> list[str]:
    return [
        *(button_id(a, mention_id) for a in Action),
        variant_select_id(mention_id),
        tweak_select_id(mention_id),
    ]


def test_custom_ids_round_trip_within_100_characters() -> None:
    for mention_id in (1, 42, BIGGEST_ID):
        for action in Action:
            custom_id = button_id(action, mention_id)
            assert len(custom_id) <= 100
            assert parse_custom_id(custom_id) == (action.value, mention_id)
        assert parse_custom_id(variant_select_id(mention_id)) == ("vs", mention_id)
        assert parse_custom_id(tweak_select_id(mention_id)) == ("tw", mention_id)
    with pytest.raises(ValueError):
        button_id(Action.APPROVE, 0)
    with pytest.raises(ValueError):
        button_id(Action.APPROVE, BIGGEST_ID + 1)


FORGED = [
    "p0:ap:12",  # an older version
    "p2:ap:12",  # a newer one
    "p1:xx:12",  # no such action
    "p1:ap:0",
    "p1:ap:012",
    "p1:ap:-3",
    "p1:ap:1234567890123",  # longer than any id we issue
    "p1:ap:12:7",
    "p1:vs:abc",
]


def templates() -> dict[type[Any], re.Pattern[str]]:
    return {item: item.__discord_ui_compiled_template__ for item in DYNAMIC_ITEMS}


def test_every_id_is_dispatched_to_exactly_one_item() -> None:
    """discord.py runs every DynamicItem whose template fully matches: one must, one only."""
    for custom_id in current_ids(12) + current_ids(BIGGEST_ID):
        matching = [i for i, t in templates().items() if t.fullmatch(custom_id)]
        assert len(matching) == 1 and matching[0] is not StaleComponent, custom_id
    for custom_id in FORGED:
        matching = [i for i, t in templates().items() if t.fullmatch(custom_id)]
        assert matching == [StaleComponent], custom_id
        assert parse_custom_id(custom_id) is None
    # Ids that are not Parley's (another bot's, a plain word) are left alone.
    for custom_id in ("confirm", "m:12:ap", ""):
        assert not any(t.fullmatch(custom_id) for t in templates().values())
    assert {BUTTON_TEMPLATE, VARIANT_TEMPLATE, TWEAK_TEMPLATE, STALE_TEMPLATE} == {
        t.pattern for t in templates().values()
    }


async def test_items_are_rebuilt_from_their_custom_id() -> None:
    base = discord.ui.Button[Any](custom_id=button_id(Action.REJECT, 77))
    match = re.fullmatch(BUTTON_TEMPLATE, base.custom_id or "")
    assert match is not None
    button = await ReviewButton.from_custom_id(None, base, match)  # type: ignore[arg-type]
    assert (button.action, button.mention_id) == (Action.REJECT, 77)
    assert button.custom_id == "p1:rj:77"

    options = [discord.SelectOption(label="Draft 1", value="1")]
    select = discord.ui.Select[Any](custom_id=variant_select_id(9), options=options)
    match = re.fullmatch(VARIANT_TEMPLATE, select.custom_id)
    assert match is not None
    rebuilt = await VariantSelect.from_custom_id(None, select, match)  # type: ignore[arg-type]
    assert rebuilt.mention_id == 9 and rebuilt.custom_id == "p1:vs:9"


def ids_by_row(view: discord.ui.View | None) -> list[list[str]]:
    assert view is not None
    rows = view.to_components()
    assert len(rows) <= 5
    out = []
    for row in rows:
        assert 1 <= len(row["components"]) <= 5
        out.append([c["custom_id"] for c in row["components"]])
    assert all(len(i) <= 100 for row in out for i in row)
    assert view.timeout is None and view.is_persistent()
    return out


def reply(state: ReplyState) -> Reply:
    now = utcnow()
    return Reply(
        id=1,
        mention_id=12,
        text="t",
        publisher="log",
        idempotency_key="k",
        state=state,
        approved_by="discord:ann",
        created_at=now,
        updated_at=now,
    )


def test_components_follow_the_mention_state() -> None:
    alerted = drafted_mention(state=MentionState.ALERTED)
    assert ids_by_row(alert_components(alerted, [], None)) == [
        ["p1:dr:12", "p1:ed:12", "p1:rj:12", "p1:ig:12"]
    ]
    three = drafts("a", "b", "c", selected=2)
    rows = ids_by_row(alert_components(drafted_mention(), three, None))
    assert rows == [
        ["p1:vs:12"],
        ["p1:ap:12", "p1:ed:12", "p1:dr:12", "p1:rj:12", "p1:ig:12"],
        ["p1:tw:12"],
    ]
    select = alert_components(drafted_mention(), three, None).to_components()[0]["components"][0]  # type: ignore[union-attr]
    assert [o["value"] for o in select["options"]] == ["1", "2", "3"]
    assert [o.get("default", False) for o in select["options"]] == [False, True, False]
    # One draft: no variant select. Crisis/legal: no one-tap Approve until a person edits.
    assert ids_by_row(alert_components(drafted_mention(), drafts("a"), None))[0][0] == "p1:ap:12"
    crisis = drafted_mention(intent="crisis_legal")
    assert "p1:ap:12" not in ids_by_row(alert_components(crisis, drafts("a"), None))[0]
    edited = drafts("mine")
    edited[0] = edited[0].model_copy(update={"origin": "edit:discord:ann"})
    assert ids_by_row(alert_components(crisis, edited, None))[0][0] == "p1:ap:12"
    approved = drafted_mention(state=MentionState.APPROVED)
    assert ids_by_row(alert_components(approved, [], reply(ReplyState.DEAD))) == [
        ["p1:rt:12", "p1:ed:12"]
    ]
    assert ids_by_row(alert_components(approved, [], reply(ReplyState.AWAITING_MANUAL))) == [
        ["p1:ok:12"]
    ]
    assert alert_components(approved, [], reply(ReplyState.QUEUED)) is None
    for closed in (MentionState.POSTED, MentionState.REJECTED, MentionState.IGNORED):
        assert alert_components(drafted_mention(state=closed), [], None) is None


def test_the_edit_box_fits_discord_and_the_platform() -> None:
    assert modal_max_length("reddit", 5000) == 4000
    assert modal_max_length("bluesky", 5000) == 300
    assert modal_max_length("rss", 1000) == 1000
    # X and Mastodon count links short: the box allows more and the core checks exactly.
    assert modal_max_length("x", 5000) == 4000


@pytest.fixture
async def bot(core: Core) -> AsyncIterator[ParleyBot]:
    """A real ParleyBot with every cog, never connected."""
    client = ParleyBot(core, DiscordConfig(token=SecretStr("not-a-token")))
    for cog in (Review, Stats, Watch):
        await client.add_cog(cog(client))
    yield client
    await client.close()


def walk(command: app_commands.Command[Any, ..., Any] | app_commands.Group) -> list[Any]:
    if isinstance(command, app_commands.Group):
        return [command, *(c for sub in command.commands for c in walk(sub))]
    return [command]


async def test_the_command_tree_keeps_discord_limits(bot: ParleyBot) -> None:
    commands = bot.tree.get_commands()
    assert {c.name for c in commands} == {
        "stats",
        "pending",
        "queue",
        "sources",
        "mention",
        "watch",
        "pause",
        "resume",
    }
    for top in commands:
        payload = top.to_dict(bot.tree)
        assert len(str(payload)) <= 8000
        for command in walk(top):  # type: ignore[arg-type]
            assert re.fullmatch(r"[a-z0-9_-]{1,32}", command.name)
            assert 1 <= len(command.description) <= 100
            if isinstance(command, app_commands.Command):
                assert len(command.parameters) <= 25
                for param in command.parameters:
                    assert re.fullmatch(r"[a-z0-9_-]{1,32}", param.name)
                    assert 1 <= len(param.description) <= 100
                    assert len(param.choices) <= 25
    stats = bot.tree.get_command("stats")
    assert isinstance(stats, app_commands.Command)
    period = next(p for p in stats.parameters if p.name == "period")
    assert [c.value for c in period.choices] == ["24h", "7d", "30d"] and not period.required
    brand = next(p for p in stats.parameters if p.name == "brand")
    assert brand.autocomplete and not brand.required
    watch = bot.tree.get_command("watch")
    assert isinstance(watch, app_commands.Group)
    assert sorted(c.name for c in watch.commands) == ["add", "list", "remove"]
    mention_cmd = bot.tree.get_command("mention")
    assert isinstance(mention_cmd, app_commands.Command)
    (mention_id,) = mention_cmd.parameters
    assert (mention_id.name, mention_id.required, mention_id.min_value) == ("id", True, 1)
    assert bot.get_cog("Review") is not None


async def test_the_extensions_load_on_a_parley_bot(core: Core) -> None:
    client = ParleyBot(core, DiscordConfig(token=SecretStr("not-a-token")))
    for extension in EXTENSIONS:
        await client.load_extension(extension)
    assert set(client.cogs) == {"Review", "Stats", "Watch"}
    await client.close()
    assert client.cogs == {}
