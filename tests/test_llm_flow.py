"""The LLM wired through build_core against the fake server: alerts arrive triaged and
drafted, one call per draft, cacheable prompt prefixes, tweaks, limits, crisis/legal, budget."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, build_core
from bot.config import ParleyConfig, parse_config
from bot.connectors.catalog import reply_length
from bot.domain.models import SYSTEM, Actor, Mention
from bot.drafting.tweaks import TWEAKS
from bot.errors import UserFacingError
from bot.events import Event, Notice
from bot.presentation import alert_view
from bot.services.stats import compute_stats, stats_lines
from bot.settings import Settings
from fakes.openai import FakeOpenAI, Step
from tests.conftest import ROOT
from tests.helpers import raw

CM = Actor(platform="console", user_id="cm", display_name="cm")

LLM_CONFIG: dict[str, Any] = {
    "brands": [
        {
            "name": "acme",
            "display_name": "Acme Cloud",
            "signature": "— Sam from Acme",
            "allowed_links": ["status.acme.example"],
            "rules": [{"name": "any", "query": "acme"}],
        }
    ]
}


def llm_settings(tmp_path: Path, fake_openai: FakeOpenAI, **kw: Any) -> Settings:
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        parley_default_publisher="log",
        openai_base_url=fake_openai.base_url,
        openai_api_key="test-key",
        openai_model="fake-draft",
        openai_triage_model="fake-triage",
        parley_llm_timeout=30.0,  # never reached: no test here waits for a timeout
        parley_llm_max_retries=1,
        **{"parley_triage_window_seconds": 0.0, **kw},  # one poll at a time: no waiting
    )


@pytest.fixture
def llm_config() -> ParleyConfig:
    return parse_config(LLM_CONFIG, "test.toml")


@pytest.fixture
async def llm_core(
    tmp_path: Path, fake_openai: FakeOpenAI, llm_config: ParleyConfig
) -> AsyncIterator[Core]:
    async with build_core(llm_settings(tmp_path, fake_openai), llm_config) as core:
        yield core


async def alert(core: Core, *texts: str, platform: str = "rss", reach: int = 120) -> list[Mention]:
    items = [
        raw(f"id-{i}-{abs(hash(t))}", t, platform=platform, reach=reach)
        for i, t in enumerate(texts)
    ]
    batch = await core.ingestor.store_batch(items)
    alerted = await core.alerter.alert(batch, first_poll=False)
    assert core.llm is not None
    await core.llm.triager.drain()  # alerts go out first; the model's triage follows…
    await core.auto_drafts.drain()  # …then their drafts
    return [await core.store.mentions.get(m.id) for m in alerted]


def purposes(fake_openai: FakeOpenAI) -> list[str]:
    return [r["response_format"]["json_schema"]["name"] for r in fake_openai.requests]


async def test_alerts_arrive_triaged_and_drafted(llm_core: Core, fake_openai: FakeOpenAI) -> None:
    assert llm_core.drafter.name == "llm"
    alerted = await alert(
        llm_core,
        "Is acme down for anyone?",
        "I love acme, best tool ever",
        "Riding my acme broom to the quidditch match",
    )
    # one triage call for the whole poll, then one call per drafted mention
    assert purposes(fake_openai) == ["parley_triage", "parley_draft", "parley_draft"]
    assert fake_openai.requests[0]["model"] == "fake-triage"
    assert fake_openai.requests[1]["model"] == "fake-draft"
    by_text = {m.text: m for m in alerted}
    question = by_text["Is acme down for anyone?"]
    assert question.intent == "question" and question.triage is not None
    assert question.triage.by == "fake-triage" and question.triage.needs_reply
    drafts = await llm_core.store.drafts.current(question.id)
    assert len(drafts) == 3 and {d.origin for d in drafts} == {"llm"}
    assert llm_core.llm is not None and llm_core.llm.library is not None
    expected_hash = llm_core.llm.library.prompt_hash("draft", llm_core.config.brands[0])
    assert {(d.model, d.prompt_hash) for d in drafts} == {("fake-draft", expected_hash)}
    assert all(d.tokens and d.tokens > 0 for d in drafts)
    broom = by_text["Riding my acme broom to the quidditch match"]
    assert broom.triage is not None and not broom.triage.relevant
    assert await llm_core.store.drafts.current(broom.id) == []
    view = alert_view(broom, [], None, "Acme Cloud")
    assert view.relevant is False and view.triage is not None
    assert any("probably not about Acme Cloud" in w for w in view.warnings)


async def test_the_static_prompt_prefix_is_identical_across_calls(
    llm_core: Core, fake_openai: FakeOpenAI
) -> None:
    await alert(llm_core, "acme question one?", "acme: a very different complaint, broken")
    await alert(llm_core, "acme third mention?")
    drafts = [
        r
        for r in fake_openai.requests
        if r["response_format"]["json_schema"]["name"].endswith("draft")
    ]
    triages = [
        r
        for r in fake_openai.requests
        if r["response_format"]["json_schema"]["name"].endswith("triage")
    ]
    assert len(drafts) == 3 and len(triages) == 2
    for group in (drafts, triages):
        systems = {r["messages"][0]["content"] for r in group}
        assert len(systems) == 1  # byte-identical: a provider can cache it
        assert len({r["messages"][1]["content"] for r in group}) == len(group)
        assert all([m["role"] for m in r["messages"]] == ["system", "user"] for r in group)
    # system prompt and brand voice come first, shared by drafting and triage
    draft_system, triage_system = (
        drafts[0]["messages"][0]["content"],
        triages[0]["messages"][0]["content"],
    )
    shared = draft_system.split("# Task:")[0]
    assert triage_system.startswith(shared) and "Brand voice of Acme Cloud" in shared
    # nothing variable in the cached part: no fence key, no mention text
    assert "acme question one" not in draft_system
    assert not re.search(r"<<<DATA [0-9a-f]{16}", draft_system)


async def test_over_long_variants_are_shortened_or_dropped(
    llm_core: Core, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Step("ok"), Step("overlong"))  # triage, then the draft
    (mention,) = await alert(llm_core, "acme is great, thanks!", platform="x")
    drafts = await llm_core.store.drafts.current(mention.id)
    assert drafts
    for draft in drafts:
        assert reply_length(draft.text, "x") <= 280
        assert draft.text.endswith("— Sam from Acme")
        assert any("shortened to fit x's limit of 280" in f for f in draft.flags)


async def test_tweaks_and_instructions(llm_core: Core, fake_openai: FakeOpenAI) -> None:
    (mention,) = await alert(llm_core, "How do I export from acme?")
    first = await llm_core.store.drafts.selected(mention.id)
    assert first is not None
    drafts = await llm_core.review.draft(mention.id, CM, instruction="shorter")
    user = fake_openai.user_messages()[-1]
    assert f"Tweak: {TWEAKS[0].instruction}" in user
    assert re.search(r"<<<DATA \w+ current-draft>>>\n" + re.escape(first.text), user)
    assert all(d.text.startswith("On it") for d in drafts)
    await llm_core.review.draft(mention.id, CM, instruction="translate")
    assert "Reply language: en (the brand's language)" in fake_openai.user_messages()[-1]
    await llm_core.review.draft(mention.id, CM, instruction="mention the  status page")
    user = fake_openai.user_messages()[-1]
    assert "Instruction from the community manager: mention the status page" in user
    assert [t.key for t in TWEAKS] == ["shorter", "warmer", "formal", "translate"]


async def test_crisis_legal_needs_a_person_to_edit(llm_core: Core, fake_openai: FakeOpenAI) -> None:
    (mention,) = await alert(llm_core, "acme lost my data, my lawyer will be in touch")
    assert mention.intent == "crisis_legal" and mention.urgent
    with pytest.raises(UserFacingError, match="crisis/legal: a person must write or edit"):
        await llm_core.review.approve(mention.id, CM)
    drafts = await llm_core.store.drafts.current(mention.id)
    view = alert_view(mention, drafts, None, "Acme Cloud")
    assert view.warnings[0].startswith("crisis/legal: no one-tap approval")
    await llm_core.review.edit(mention.id, "We're sorry. Please DM us. — Sam from Acme", CM)
    reply = await llm_core.review.approve(mention.id, CM)
    assert reply.text.startswith("We're sorry")


async def test_negative_and_high_reach_is_urgent(llm_core: Core) -> None:
    (loud,) = await alert(llm_core, "acme is broken again", reach=50_000)
    (quiet,) = await alert(llm_core, "acme is broken again today", reach=50)
    assert loud.urgent and not quiet.urgent


async def test_budget_exhaustion_pauses_drafting_with_a_notice(
    tmp_path: Path, fake_openai: FakeOpenAI, llm_config: ParleyConfig
) -> None:
    settings = llm_settings(tmp_path, fake_openai, parley_llm_daily_tokens=50)
    async with build_core(settings, llm_config) as core:
        events: list[Event] = []
        core.bus.publish = events.append  # type: ignore[method-assign,assignment]
        (first,) = await alert(core, "acme question?")  # triage spends the budget
        assert first.triage is not None and first.triage.by == "fake-triage"
        assert await core.store.drafts.current(first.id) == []
        (second,) = await alert(core, "another acme question?")
        assert second.triage is not None and second.triage.by == "rules"
        notices = [e for e in events if isinstance(e, Notice)]
        assert len(notices) == 1 and "budget" in notices[0].text
        with pytest.raises(UserFacingError, match="budget"):
            await core.review.draft(second.id, CM)
    assert len(fake_openai.requests) == 1


async def test_a_failing_server_falls_back_to_templates(
    llm_core: Core, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(*[Step("status", status=500, headers={"retry-after-ms": "1"})] * 4)
    (mention,) = await alert(llm_core, "acme question?")
    assert mention.triage is not None and mention.triage.by == "rules"
    drafts = await llm_core.store.drafts.current(mention.id)
    assert drafts and all(d.model is None for d in drafts)  # the offline templates
    assert {d.origin for d in drafts} == {"offline"}  # not "llm": the drafter fell back
    fake_openai.then(*[Step("status", status=500, headers={"retry-after-ms": "1"})] * 2)
    with pytest.raises(UserFacingError, match="could not redraft"):
        await llm_core.review.draft(mention.id, CM, instruction="warmer")


async def test_stats_show_the_spend(llm_core: Core) -> None:
    await alert(llm_core, "acme question?", "acme is broken")
    lines = stats_lines(await compute_stats(llm_core.store))
    llm_line = next(line for line in lines if line.startswith("LLM: "))
    assert re.match(
        r"LLM: 3 calls, [\d,]+ tokens \([\d,]+ prompt tokens cached\)"
        r" · [\d,]+ tokens per drafted mention",
        llm_line,
    )
    assert any(line.startswith("LLM by purpose: draft 2 calls") for line in lines)


async def test_without_a_server_parley_drafts_offline_and_says_so(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    assert core.drafter.name == "offline" and core.llm is not None and core.llm.client is None
    (mention,) = await alert(core, "Is acme down?")
    assert mention.triage is not None and mention.triage.by == "rules"
    assert await core.store.drafts.current(mention.id)


async def test_the_offline_choice_is_logged_once(
    settings: Settings, config: ParleyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.services.llm_setup"):
        async with build_core(settings, config):
            pass
    assert [r.getMessage() for r in caplog.records if "OPENAI" in r.getMessage()] == [
        "no OPENAI_API_KEY or OPENAI_BASE_URL: drafting with the offline templates and "
        "triaging by rules (docs/llm.md explains how to add a model)"
    ]


async def test_auto_draft_of_system_actor_is_not_blocked(llm_core: Core) -> None:
    (mention,) = await alert(llm_core, "acme question?")
    drafts = await llm_core.review.draft(mention.id, SYSTEM)
    assert len(drafts) == 3
