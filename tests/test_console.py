"""Scenario tests over the console frontend: push a line, read the reply (errbot style)."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

from bot.app import Core, build_core
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.domain.states import MentionState
from bot.frontends.console.frontend import ConsoleFrontend
from bot.settings import Settings
from tests.conftest import ROOT
from tests.helpers import raw


async def _with_mentions(core: Core) -> tuple[ConsoleFrontend, list[int]]:
    console = ConsoleFrontend(core, out=io.StringIO())
    batch = await core.ingestor.store_batch(
        [
            raw("q", "How do I export my notes from acme cloud?", handle="ana"),
            raw("c", "Acme is down and I want a refund", handle="@everyone"),
        ]
    )
    alerted = await core.alerter.alert(batch, first_poll=False)
    await core.auto_drafts.drain()  # alerts go out first; their drafts follow
    return console, [m.id for m in alerted]


async def test_full_review_loop_from_the_console(core: Core) -> None:
    console, (urgent, question) = await _with_mentions(core)
    listing = await console.handle_line("list")
    assert any(f"#{question}" in line and "drafted" in line for line in listing)
    assert listing[0].startswith("!")  # urgent first and flagged
    shown = "\n".join(await console.handle_line(f"show {question}"))
    assert "How do I export my notes from acme cloud?" in shown
    assert "*Draft 1:" in shown and "History:" in shown
    assert await console.handle_line(f"approve {question}") == [
        f"Queued reply for #{question} via log."
    ]
    await core.outbox.send_due()
    assert (await core.store.mentions.get(question)).state is MentionState.POSTED
    assert await console.handle_line(f"reject {urgent} needs a human call") == []
    assert "rejected" in (await console.handle_line("list rejected"))[0]
    queue = await console.handle_line("queue")
    assert queue == ["The outbox is empty."]
    stats = await console.handle_line("stats 7d acme")
    assert stats[0] == "Last 7d for acme: 2 mentions"
    assert "Answered: 1" in stats[4]


async def test_errors_are_one_friendly_line(core: Core) -> None:
    console, (urgent, _) = await _with_mentions(core)
    assert (await console.handle_line("frobnicate 3"))[0].startswith("Unknown command")
    assert await console.handle_line("show banana") == [
        "Sorry: give the mention's number, e.g. 'show 12'."
    ]
    assert await console.handle_line("show 999") == ["Sorry: no mention #999."]
    assert (await console.handle_line("list nonsense"))[0].startswith("Sorry: unknown state")
    assert (await console.handle_line("stats 3y"))[0].startswith("Sorry: unknown period")
    assert await console.handle_line(f"approve {urgent} x") == [
        "Sorry: approve takes an optional variant number, e.g. 'approve 12 2'."
    ]
    await console.handle_line(f"ignore {urgent}")
    reply = await console.handle_line(f"approve {urgent}")
    assert reply == [f"Sorry: mention #{urgent} is ignored."]


async def test_edit_and_variant_choice(core: Core) -> None:
    console, (_, question) = await _with_mentions(core)
    await console.handle_line(f"use {question} 2")
    selected = await core.store.drafts.selected(question)
    assert selected is not None and selected.variant == 2
    out = await console.handle_line(f"edit {question} Hi Ana! Settings → Export does it.")
    assert out == [f"Type 'approve {question}' to post your text."]
    selected = await core.store.drafts.selected(question)
    assert selected is not None and selected.text == "Hi Ana! Settings → Export does it."


async def test_a_non_approver_console_is_refused(core: Core) -> None:
    core.review.policy = type(core.review.policy)(console_is_approver=False)
    console, (_, question) = await _with_mentions(core)
    console.actor = Actor(platform="console", user_id="guest")
    out = await console.handle_line(f"approve {question}")
    assert out == ["Sorry: only approvers can approve replies; ask a team lead to add you."]


async def test_alerts_render_without_pings_or_control_characters(core: Core) -> None:
    out = io.StringIO()
    console = ConsoleFrontend(core, out=out)
    stop = asyncio.Event()
    bus = asyncio.create_task(core.bus.run(stop))
    batch = await core.ingestor.store_batch(
        [raw("z", "acme cloud question from a hostile handle", handle="@everyone")]
    )
    await core.alerter.alert(batch, first_poll=False)
    await core.bus.drain()
    stop.set()
    await bus
    text = out.getvalue()
    assert "New mention #" in text and "@everyone" in text  # shown as the author's handle
    assert "\x1b" not in text
    for line in text.splitlines():
        if "Draft" in line:
            assert "@everyone" not in line  # but never echoed into a reply
    assert console.name == "console"


async def test_a_brand_can_route_its_alerts_away_from_the_console(core: Core) -> None:
    out = io.StringIO()
    ConsoleFrontend(core, out=out)
    acme = core.config.brand("acme")
    assert acme is not None
    core.config.brands[0] = acme.model_copy(
        update={"route": acme.route.model_copy(update={"console": False})}
    )
    stop = asyncio.Event()
    bus = asyncio.create_task(core.bus.run(stop))
    batch = await core.ingestor.store_batch(
        [raw("a", "acme cloud is neat"), raw("g", "globex ships a new thing today")]
    )
    await core.alerter.alert(batch, first_poll=False)
    await core.bus.drain()
    stop.set()
    await bus
    assert "acme cloud is neat" not in out.getvalue()
    assert "globex ships a new thing today" in out.getvalue()


async def test_watch_rules_from_the_console(core: Core) -> None:
    console = ConsoleFrontend(core, out=io.StringIO())
    assert await console.handle_line("watch globex") == [" globex/any [parley.toml]: globex"]
    assert await console.handle_line("watch add globex rival !initech (down OR outage)") == [
        "Added urgent rule globex/rival; it applies from the next poll."
    ]
    assert await console.handle_line("watch add acme billing invoice* OR billing") == [
        "Added rule acme/billing; it applies from the next poll."
    ]
    listing = await console.handle_line("watch")
    assert listing[0] == "!acme/outage [parley.toml]: acme (down OR outage OR refund)"
    assert listing[-2:] == [
        "!globex/rival [chat, by console:you]: initech (down OR outage)",
        " acme/billing [chat, by console:you]: invoice* OR billing",
    ]
    batch = await core.ingestor.store_batch([raw("i", "initech is down again")])
    assert [(n.brand, n.rule, n.urgent) for n in batch.new] == [("globex", "rival", True)]
    assert await console.handle_line("watch remove globex rival") == ["Removed rule globex/rival."]
    assert await console.handle_line("watch remove acme outage") == [
        "Sorry: rule acme/outage comes from parley.toml; edit that file to change or remove it, "
        "then restart Parley."
    ]
    assert await console.handle_line("watch add acme broken acme OR") == [
        "Sorry: that query has a mistake: 'OR' needs a word on both sides at position 5."
    ]
    assert (await console.handle_line("watch add acme"))[0].startswith("Sorry: type 'watch add")
    assert (await console.handle_line("watch nope"))[0].startswith("Sorry: unknown brand 'nope'")


async def test_pause_resume_and_pending_from_the_console(core: Core) -> None:
    console, (urgent, question) = await _with_mentions(core)
    assert await console.handle_line("pending") == [
        "2 awaiting a decision (urgent first, then oldest):",
        *[line for line in await console.handle_line("list") if f"#{urgent} " in line],
        *[line for line in await console.handle_line("list") if f"#{question} " in line],
    ]
    assert await console.handle_line("pause") == [
        "Alerts paused. Mentions are still collected; type 'resume' to see them."
    ]
    batch = await core.ingestor.store_batch([raw("late", "acme cloud while you were away")])
    await core.alerter.alert(batch, first_poll=False)
    assert await console.handle_line("pause") == [
        "Alerts were already paused (1 held). Type 'resume'."
    ]
    assert (await console.handle_line("pending"))[-1] == (
        "Alerts are paused: 1 held. Type 'resume'."
    )
    assert await console.handle_line("resume") == ["Alerts resumed: 1 held mention alerted."]
    assert await console.handle_line("resume") == ["Alerts were not paused; nothing was held."]
    pending = await console.handle_line("pending acme")
    assert pending[0] == "3 awaiting a decision (urgent first, then oldest):"
    assert pending[1].startswith(f"!#{urgent} ") and f"#{batch.new[0].id} " in pending[3]
    await console.handle_line(f"reject {urgent}")
    await console.handle_line(f"ignore {question}")
    await console.handle_line(f"ignore {batch.new[0].id}")
    assert await console.handle_line("pending") == ["Nothing is waiting for a decision."]


async def test_a_non_approver_console_cannot_pause_or_change_rules(core: Core) -> None:
    core.alerts.policy = core.watch.policy = type(core.watch.policy)(console_is_approver=False)
    console = ConsoleFrontend(core, out=io.StringIO(), actor=Actor(platform="console", user_id="g"))
    assert await console.handle_line("pause") == [
        "Sorry: only approvers can pause alerts; ask a team lead."
    ]
    assert await console.handle_line("watch add acme x acme") == [
        "Sorry: only approvers can change watch rules; ask a team lead."
    ]
    assert len(await console.handle_line("watch")) == 3  # reading is for everyone
    assert "pending [brand]" in "\n".join(await console.handle_line("help"))


async def test_reload_prompts_keeps_the_old_ones_on_a_bad_file(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    custom = settings.model_copy(update={"parley_prompts_dir": prompts})
    async with build_core(custom, config) as core:
        console = ConsoleFrontend(core, out=io.StringIO())
        template = prompts / "templates" / "question.md"
        template.write_text("Hello {author}, we're on it. {signature}", encoding="utf-8")
        assert await console.handle_line("reload") == ["Prompts and templates reloaded."]
        batch = await core.ingestor.store_batch([raw("q", "How do I use acme cloud?")])
        (mention,) = await core.alerter.alert(batch, first_poll=False)
        await core.auto_drafts.drain()  # its draft follows the alert
        drafts = await core.store.drafts.current(mention.id)
        assert drafts[0].text.startswith("Hello ")
        template.write_text("Hi {unknown_placeholder}", encoding="utf-8")
        out = await console.handle_line("reload")
        assert "question.md" in out[0] and out[-1].startswith("The previous prompts stay")
        await core.review.draft(mention.id, console.actor)
        assert (await core.store.drafts.current(mention.id))[0].text.startswith("Hello")
        console.actor = Actor(platform="console", user_id="guest")
        core.review.policy = type(core.review.policy)(console_is_approver=False)
        assert await console.handle_line("reload") == [
            "Sorry: only approvers can reload the prompts."
        ]
