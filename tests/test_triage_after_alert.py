"""Alerts do not wait for the model's triage: the alert goes out with the rules' verdict (urgent
first), the model's triage follows in the background and edits the alert when it changes what
it shows, automatic drafts wait for it (noise costs no draft), and a stop drops it cleanly.
Real PTB against the fake Bot API and a fake OpenAI-compatible server whose triage answers
are held until the test releases them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import Core, build_core, run_core
from bot.config import ParleyConfig
from bot.domain.models import SYSTEM
from bot.events import MentionChanged
from bot.frontends.console.frontend import ConsoleFrontend
from bot.frontends.telegram import TelegramConfig, TelegramFrontend
from bot.triage.model import TRIAGED
from bot.triage.rules import RULES
from fakes.openai import FakeOpenAI, Step
from fakes.telegram import FakeTelegram
from tests import telegram_harness
from tests.helpers import MODEL_CHAT_ID, eventually, model_settings, raw

CHAT = MODEL_CHAT_ID

fake = telegram_harness.fake
text_of = telegram_harness.text_of
URGENT = "🚨 <b>URGENT</b>"


class HeldTriage(FakeOpenAI):
    """The fake model, but every triage request waits for ``release`` (drafts answer at once);
    ``triage_held`` is set while one is held."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.triage_held = asyncio.Event()
        self.drafts_asked = 0

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "# Task: triage" not in body["messages"][0]["content"]:
            self.drafts_asked += 1
            return await super()._completions(request)
        self.triage_held.set()
        await self.release.wait()
        return await super()._completions(request)


@pytest.fixture
async def model() -> AsyncIterator[HeldTriage]:
    server = HeldTriage()
    await server.start()
    yield server
    server.release.set()
    await server.stop()


async def alert(core: Core, text: str) -> int:
    batch = await core.ingestor.store_batch([raw("m1", text, handle="user1")])
    (mention,) = await core.alerter.alert(batch, first_poll=False)
    return mention.id


def crisis(mention_id: int) -> Step:
    """The model's answer: the mention is a crisis."""
    item = {
        "id": mention_id,
        "relevant": True,
        "sentiment": "negative",
        "intent": "crisis_legal",
        "urgency": "high",
        "needs_reply": True,
        "reason": "threatens legal action",
    }
    return Step("content", content=json.dumps({"items": [item]}))


async def test_the_alert_goes_out_while_the_model_hangs_and_a_stop_drops_the_triage(
    tmp_path: Path,
    model: HeldTriage,
    fake: FakeTelegram,
    config: ParleyConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = model_settings(tmp_path, model, fake)
    async with build_core(settings, config) as core:
        frontend = TelegramFrontend(core, TelegramConfig.from_settings(settings))
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [frontend], stop))
        await fake.wait_for("getUpdates")
        # Bounded: before this change the alert waited for the model, which never answers here.
        lawsuit = "My lawyer is preparing a lawsuit against acme cloud"
        mid = await asyncio.wait_for(alert(core, lawsuit), 30)
        (sent,) = await fake.wait_for("sendMessage")
        await asyncio.wait_for(model.triage_held.wait(), 30)
        assert not model.release.is_set()  # the model has not answered, yet the alert is out,
        assert URGENT in sent.params["text"]  # urgent by the rules
        mention = await core.store.mentions.get(mid)
        assert mention.urgent and mention.triage is not None and mention.triage.by == RULES
        with caplog.at_level(logging.WARNING, logger="bot.app"):
            stop.set()
            await asyncio.wait_for(task, 30)
        assert "still busy" not in caplog.text  # the held triage was dropped at the stop
        assert core.llm is not None and core.llm.triager.busy == 0
        mention = await core.store.mentions.get(mid)
        assert mention.triage is not None and mention.triage.by == RULES  # the rules' stays


async def test_the_models_crisis_verdict_edits_the_alert_to_urgent(
    tmp_path: Path, model: HeldTriage, fake: FakeTelegram, config: ParleyConfig
) -> None:
    settings = model_settings(tmp_path, model, fake)
    async with build_core(settings, config) as core:
        frontend = TelegramFrontend(core, TelegramConfig.from_settings(settings))
        stop = asyncio.Event()
        task = asyncio.create_task(run_core(core, [frontend], stop))
        await fake.wait_for("getUpdates")
        try:
            mid = await alert(core, "acme cloud lost all my invoices, you will hear from me")
            (sent,) = await fake.wait_for("sendMessage")
            await asyncio.wait_for(model.triage_held.wait(), 30)
            assert URGENT not in sent.params["text"]  # the rules saw nothing urgent
            model.then(crisis(mid))
            model.release.set()

            async def triaged() -> bool:
                mention = await core.store.mentions.get(mid)
                return mention.triage is not None and mention.triage.by != RULES

            await eventually(triaged, "the model's triage to be stored")
            await core.settle()
            mention = await core.store.mentions.get(mid)
            assert mention.urgent and mention.intent == "crisis_legal"
            assert len(fake.of("sendMessage")) == 1  # edited in place, not sent again
            shown = text_of(fake, mention.alert_refs["telegram"])
            assert URGENT in shown and "crisis/legal" in shown
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_a_mention_the_model_finds_off_topic_costs_no_draft(
    tmp_path: Path, model: HeldTriage, config: ParleyConfig
) -> None:
    async with build_core(model_settings(tmp_path, model, None), config) as core:
        mid = await alert(core, "Riding my acme cloud broom to the quidditch match")
        mention = await core.store.mentions.get(mid)
        assert mention.drafting  # the rules found it relevant: a draft is owed…
        await asyncio.wait_for(model.triage_held.wait(), 30)
        model.release.set()
        await core.settle()
        mention = await core.store.mentions.get(mid)
        assert mention.triage is not None and not mention.triage.relevant
        assert not mention.drafting and model.drafts_asked == 0  # …until the model said noise
        console = ConsoleFrontend(core, out=io.StringIO())
        change = MentionChanged(mention, [], None, SYSTEM, TRIAGED)
        (line,) = console.render_event(change)  # how the console shows the model's verdict
        assert line.startswith(f"#{mid} triaged again: other")
