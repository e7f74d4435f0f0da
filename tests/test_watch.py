"""Watch rules from chat: permissions, validation, matching order, audit and persistence."""

from __future__ import annotations

import pytest

from bot.app import Core, build_core
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.errors import NotFound, PermissionDenied, UserFacingError
from bot.settings import Settings
from tests.helpers import raw

LEAD = Actor(platform="telegram", user_id="7", display_name="Lea")
GUEST = Actor(platform="telegram", user_id="8", display_name="Gus")


@pytest.fixture
def lead_core(core: Core) -> Core:
    """The core with telegram user 7 as the only Telegram approver."""
    policy = type(core.watch.policy)(users={"telegram": frozenset({"7"})})
    core.watch.policy = policy
    return core


async def test_config_rules_are_listed_in_order_with_their_origin(core: Core) -> None:
    rules = await core.watch.rules()
    assert [(r.brand, r.name, r.origin) for r in rules] == [
        ("acme", "outage", "config"),
        ("acme", "product", "config"),
        ("globex", "any", "config"),
    ]
    assert rules[0].urgent and rules[0].added_by is None
    assert [r.name for r in await core.watch.rules("globex")] == ["any"]
    with pytest.raises(NotFound, match="unknown brand 'nope'; brands are: acme, globex"):
        await core.watch.rules("nope")


async def test_an_added_rule_matches_at_once_after_the_config_rules(lead_core: Core) -> None:
    core = lead_core
    rule = await core.watch.add("acme", "billing", "invoice* OR billing", LEAD, urgent=True)
    assert (rule.origin, rule.added_by, rule.urgent) == ("chat", "telegram:Lea", True)
    assert [r.rule for r in core.ingestor.matcher.rules][-1] == "billing"
    batch = await core.ingestor.store_batch(
        [raw("b1", "my invoices are wrong"), raw("b2", "acme cloud invoice question")]
    )
    by_text = {n.raw.external_id: n for n in batch.new}
    assert (by_text["b1"].brand, by_text["b1"].rule, by_text["b1"].urgent) == (
        "acme",
        "billing",
        True,
    )
    # A config rule matching too keeps precedence: config rules come first.
    assert by_text["b2"].rule == "product"
    assert by_text["b2"].urgent  # but a matching urgent rule of the same brand flags it


async def test_removing_a_chat_rule_stops_it_matching(lead_core: Core) -> None:
    core = lead_core
    await core.watch.add("globex", "rival", "initech", LEAD)
    removed = await core.watch.remove("globex", "rival", LEAD)
    assert removed.query == "initech"
    batch = await core.ingestor.store_batch([raw("i1", "initech is hiring")])
    assert batch.new == [] and batch.unmatched == 1
    assert [r.name for r in await core.watch.rules("globex")] == ["any"]


async def test_changes_are_refused_to_non_approvers(lead_core: Core) -> None:
    with pytest.raises(PermissionDenied, match="only approvers can change watch rules"):
        await lead_core.watch.add("acme", "x", "acme", GUEST)
    await lead_core.watch.add("acme", "x", "acme", LEAD)
    with pytest.raises(PermissionDenied):
        await lead_core.watch.remove("acme", "x", GUEST)
    assert [r.name for r in await lead_core.watch.rules("acme")][-1] == "x"


@pytest.mark.parametrize(
    ("brand", "name", "query", "message"),
    [
        ("nope", "x", "acme", "unknown brand 'nope'"),
        ("acme", "outage", "acme", "already has a rule named 'outage' (from parley.toml)"),
        ("acme", "Outage", "acme", "already has a rule named 'outage'"),
        ("acme", "two words", "acme", "a rule name is one word"),
        ("acme", "x", "   ", "the query is empty"),
        ("acme", "x", "acme OR", "that query has a mistake: 'OR' needs a word on both sides at"),
        ("acme", "x", '"acme cloud', "that query has a mistake: unclosed quote at position 0"),
        ("acme", "x", "-job", "that query has a mistake: "),
        ("acme", "x", "a" * 2001, "that query is 2001 characters; the limit is 2000"),
    ],
)
async def test_bad_additions_get_a_clear_message(
    lead_core: Core, brand: str, name: str, query: str, message: str
) -> None:
    with pytest.raises(UserFacingError) as caught:
        await lead_core.watch.add(brand, name, query, LEAD)
    assert message in str(caught.value)
    assert len(await lead_core.store.controls.rules()) == 0


async def test_duplicate_chat_rule_and_removal_errors(lead_core: Core) -> None:
    core = lead_core
    await core.watch.add("acme", "x", "acme pricing", LEAD)
    with pytest.raises(UserFacingError, match=r"already has a rule named 'x' \(from chat\)"):
        await core.watch.add("acme", "x", "acme other", LEAD)
    with pytest.raises(UserFacingError, match=r"comes from parley\.toml; edit that file"):
        await core.watch.remove("acme", "outage", LEAD)
    with pytest.raises(NotFound, match="brand acme has no rule named 'y'"):
        await core.watch.remove("acme", "y", LEAD)


async def test_rules_are_audited_and_survive_a_restart(
    settings: Settings, config: ParleyConfig
) -> None:
    lead = Actor(platform="console", user_id="console", display_name="you")
    async with build_core(settings, config) as core:
        added = await core.watch.add("globex", "rival", "initech", lead)
        await core.watch.add("globex", "second", "initrode", lead)
        await core.watch.remove("globex", "rival", lead)
        stored = await core.store.controls.rules()
        trail_add = await core.store.audit.trail("rule", stored[0].id - 1)
        trail_second = await core.store.audit.trail("rule", stored[0].id)
    assert added.name == "rival"
    assert [(e.action, e.actor, e.before_text, e.after_text) for e in trail_add] == [
        ("add", "console:you", None, "initech"),
        ("remove", "console:you", "initech", None),
    ]
    assert trail_second[0].detail == "globex/second"
    async with build_core(settings, config) as core:
        assert [(r.name, r.origin) for r in await core.watch.rules("globex")] == [
            ("any", "config"),
            ("second", "chat"),
        ]
        batch = await core.ingestor.store_batch([raw("r1", "initrode ships"), raw("r2", "initech")])
        assert [n.rule for n in batch.new] == ["second"]


async def test_a_stored_rule_whose_brand_left_the_config_is_skipped(
    settings: Settings, config: ParleyConfig
) -> None:
    lead = Actor(platform="console", user_id="console")
    async with build_core(settings, config) as core:
        await core.watch.add("globex", "rival", "initech", lead)
    smaller = config.model_copy(update={"brands": config.brands[:1]})
    async with build_core(settings, smaller) as core:
        assert all(r.brand == "acme" for r in await core.watch.rules())
        assert all(r.brand == "acme" for r in core.ingestor.matcher.rules)
