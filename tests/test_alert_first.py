"""Alerts do not wait for drafts: the alert goes out as soon as the mention is stored, says a
draft is being written, and is edited in place when it is; drafts run up to
PARLEY_LLM_CONCURRENCY at once; digest lines are drafted only when opened; a draft the guards
refused entirely is explained on the alert. Real PTB against the fake Bot API and a fake
OpenAI-compatible server whose draft answers are held until the test releases them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import Core, build_core, run_core
from bot.config import ParleyConfig
from bot.domain.states import MentionState
from bot.frontends.telegram import TelegramConfig, TelegramFrontend
from bot.services.throttle import Rate, ThrottleLimits
from bot.settings import Settings
from fakes.openai import FakeOpenAI, Step
from fakes.telegram import FakeTelegram, user
from tests import telegram_harness
from tests.helpers import MODEL_CHAT_ID, eventually, model_settings, raw

CHAT = MODEL_CHAT_ID

fake = telegram_harness.fake
text_of = telegram_harness.text_of
ANN = user(111, "Ann", "ann")
DRAFTING = "drafting a reply…"
FAKE_DRAFT = "we're on it (option 1)"
"""Part of the fake model's first draft variant."""


class HeldDrafts(FakeOpenAI):
    """The fake model, but every draft request waits for ``release`` (triage answers at once);
    it counts drafts in flight and the most seen at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.drafts_asked = 0

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "# Task: triage" in body["messages"][0]["content"]:
            return await super()._completions(request)
        self.drafts_asked += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
            return await super()._completions(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def model() -> AsyncIterator[HeldDrafts]:
    server = HeldDrafts()
    await server.start()
    yield server
    server.release.set()
    await server.stop()


@asynccontextmanager
async def running(
    settings: Settings, config: ParleyConfig, fake: FakeTelegram, **options: Any
) -> AsyncIterator[Core]:
    """Core + Telegram frontend as `parley run` runs them, stopped at the end."""
    async with build_core(settings, config) as core:
        frontend = TelegramFrontend(core, TelegramConfig.from_settings(settings), **options)
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [frontend], stop))
        await fake.wait_for("getUpdates")
        try:
            yield core
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def alert(core: Core, *texts: str) -> list[int]:
    batch = await core.ingestor.store_batch(
        [raw(f"m{i}", text, handle=f"user{i}") for i, text in enumerate(texts)]
    )
    return [m.id for m in await core.alerter.alert(batch, first_poll=False)]


async def test_the_alert_goes_out_before_its_draft_and_is_edited_when_it_is_ready(
    tmp_path: Path, model: HeldDrafts, fake: FakeTelegram, config: ParleyConfig
) -> None:
    settings = model_settings(tmp_path, model, fake)
    async with running(settings, config, fake) as core:
        (mid,) = await alert(core, "How do I export from acme cloud?")
        (sent,) = await fake.wait_for("sendMessage")
        assert f"Mention #{mid}" in sent.params["text"]
        assert DRAFTING in sent.params["text"]  # says a draft is coming…

        async def asked() -> bool:
            return model.in_flight == 1

        await eventually(asked, "the draft request to reach the model")
        mention = await core.store.mentions.get(mid)
        assert mention.state is MentionState.ALERTED and mention.drafting  # …while it is held
        model.release.set()
        await core.settle()
        mention = await core.store.mentions.get(mid)
        assert mention.state is MentionState.DRAFTED and not mention.drafting
        assert len(fake.of("sendMessage")) == 1  # edited in place, not sent again
        shown = text_of(fake, mention.alert_refs["telegram"])
        assert FAKE_DRAFT in shown and DRAFTING not in shown


async def test_drafts_run_concurrently_up_to_the_limit(
    tmp_path: Path, model: HeldDrafts, config: ParleyConfig
) -> None:
    settings = model_settings(tmp_path, model, parley_llm_concurrency=4)  # 3 drafts + triage
    async with build_core(settings, config) as core:
        ids = await alert(core, *(f"acme cloud question number {i}?" for i in range(5)))
        assert [(await core.store.mentions.get(i)).state for i in ids] == [
            MentionState.ALERTED
        ] * 5  # every alert is out, none waited for a draft

        async def limit_reached() -> bool:
            return model.in_flight == 3

        await eventually(limit_reached, "three drafts in flight at once (one slot for triage)")
        assert model.drafts_asked == 3  # the other two wait for a free worker
        model.release.set()
        await core.settle()
        assert model.drafts_asked == 5 and model.most_in_flight == 3
        for mention_id in ids:
            assert (await core.store.mentions.get(mention_id)).state is MentionState.DRAFTED


async def test_mentions_folded_into_a_digest_are_drafted_when_opened(
    tmp_path: Path, model: HeldDrafts, fake: FakeTelegram, config: ParleyConfig
) -> None:
    model.release.set()
    settings = model_settings(tmp_path, model, fake)
    one_a_minute = ThrottleLimits(per_destination=(Rate(1, 60.0),), digest_horizon=1.0)
    async with running(settings, config, fake, limits=one_a_minute) as core:
        ids = await alert(core, *(f"acme cloud question number {i}?" for i in range(3)))
        (digest,) = await fake.wait_for("sendMessage")
        assert all(f"#{i}</b>" in digest.params["text"] for i in ids)
        await core.settle()
        assert model.drafts_asked == 0  # nobody opened them: no spend
        assert [(await core.store.mentions.get(i)).drafting for i in ids] == [True] * 3

        await fake.say(ANN, CHAT, f"/mention {ids[1]}")
        (_, opened) = await fake.wait_for("sendMessage", 2)
        assert DRAFTING in opened.params["text"]

        async def drafted() -> bool:
            return (await core.store.mentions.get(ids[1])).state is MentionState.DRAFTED

        await eventually(drafted, "the opened mention to be drafted")
        await core.settle()
        assert model.drafts_asked == 1
        mention = await core.store.mentions.get(ids[1])
        assert FAKE_DRAFT in text_of(fake, mention.alert_refs["telegram"])
        others = [await core.store.mentions.get(i) for i in (ids[0], ids[2])]
        assert [m.state for m in others] == [MentionState.ALERTED] * 2


async def test_an_alert_says_why_when_every_draft_was_refused(
    tmp_path: Path, model: HeldDrafts, fake: FakeTelegram, config: ParleyConfig
) -> None:
    model.release.set()
    bad = "Call us at +1 212 736 5000 or see https://evil.example/x — Sam"
    model.then(Step("ok"), Step("content", content=json.dumps({"variants": [bad, bad, bad]})))
    settings = model_settings(tmp_path, model, fake)
    async with running(settings, config, fake) as core:
        (mid,) = await alert(core, "How do I export from acme cloud?")
        await fake.wait_for("sendMessage")
        await core.settle()
        mention = await core.store.mentions.get(mid)
        assert mention.state is MentionState.ALERTED and not mention.drafting
        shown = text_of(fake, mention.alert_refs["telegram"])
        assert "No draft offered" in shown and DRAFTING not in shown
        assert "evil.example/x" in shown and "phone number" in shown
        assert "Write your own reply" in shown


async def test_a_draft_owed_when_parley_stops_is_written_at_the_next_start(
    tmp_path: Path, model: HeldDrafts, config: ParleyConfig
) -> None:
    settings = model_settings(tmp_path, model)
    async with build_core(settings, config) as core:
        (mid,) = await alert(core, "How do I export from acme cloud?")

        async def asked() -> bool:
            return model.in_flight == 1

        await eventually(asked, "the draft request to reach the model")
    # stopped while the model was still writing: the draft is still owed
    model.release.set()
    async with build_core(settings, config) as core:
        assert (await core.store.mentions.get(mid)).drafting
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [], stop))

        async def drafted() -> bool:
            return (await core.store.mentions.get(mid)).state is MentionState.DRAFTED

        await eventually(drafted, "the owed draft to be written after the restart")
        stop.set()
        await asyncio.wait_for(task, 30)
    assert model.drafts_asked == 2
