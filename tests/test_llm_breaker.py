"""The LLM circuit breaker against the fake OpenAI server: a server that stops answering is
left alone for a cool-down (no request reaches it) while mentions get templates and rules at
once; the team hears once that it is down and once that it is back; a failed probe doubles
the cool-down; a 400 for one bad prompt does not count; `parley status`, the console's
`sources` and the Discord/Telegram `/sources` (the same health lines) show it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import status
from bot.app import Core, build_core
from bot.changes import Changes
from bot.config import ParleyConfig
from bot.domain.models import SYSTEM, Mention
from bot.drafting.llm import DRAFT_SCHEMA, parse_variants
from bot.drafting.offline import OfflineDrafter
from bot.errors import UserFacingError
from bot.events import Event, EventBus, Notice
from bot.frontends.console.frontend import ConsoleFrontend
from bot.llm.breaker import Breaker, BreakerPolicy, LlmPaused
from bot.llm.client import JsonTask, LlmClient, LlmConfig, LlmUnavailable
from bot.services.health import health_lines
from bot.services.llm_setup import LlmServices, build_llm, llm_config
from bot.settings import Settings
from bot.storage.store import Store
from fakes.openai import FakeOpenAI, Step
from tests.conftest import ROOT
from tests.helpers import raw

DOWN = Step("status", status=503)
ASKS = (
    "does acme cloud have a Linux client?",
    "how do I export my acme cloud photos?",
    "acme cloud billing page shows the wrong currency?",
    "can two people share one acme cloud plan?",
)
"""Unrelated questions (near-duplicates would be folded into one mention)."""
BAD_PROMPT = Step("status", status=400)


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingBus(EventBus):
    """Keeps what is published, for assertions."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def notices(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Notice)]


def llm_settings(tmp_path: Path, fake_openai: FakeOpenAI, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "parley_db_path": tmp_path / "parley.db",
        "parley_prompts_dir": ROOT / "prompts",
        "parley_default_publisher": "log",
        "openai_base_url": fake_openai.base_url,
        "openai_api_key": "test-key",
        "openai_model": "fake-draft",
        "parley_llm_timeout": 5.0,
        "parley_llm_max_retries": 3,  # four attempts, as by default
        "parley_triage_window_seconds": 0.0,
    }
    return Settings(_env_file=None, **(values | kw))


@asynccontextmanager
async def clocked_llm(
    core: Core, fake_openai: FakeOpenAI, bus: EventBus, clock: FakeClock
) -> AsyncIterator[LlmServices]:
    """The LLM drafter and triager as build_core wires them, on the core's store, with a
    clock the test moves and next to no backoff between attempts."""
    settings = llm_settings(core.settings.parley_db_path.parent, fake_openai)
    services = build_llm(
        settings,
        core.config,
        core.store,
        Changes(core.store, bus),
        OfflineDrafter(settings.prompts_dir()),
        client_config=replace(llm_config(settings), backoff=0.001),
        clock=clock,
    )
    assert services.client is not None
    await services.start(core.store)
    try:
        yield services
    finally:
        await services.client.aclose()


async def stored(core: Core, text: str) -> Mention:
    batch = await core.ingestor.store_batch([raw(f"id-{abs(hash(text))}", text)])
    (new,) = batch.new
    return await core.store.mentions.get(new.id)


async def handle(core: Core, llm: LlmServices, text: str) -> tuple[Mention, list[str]]:
    """Triage and draft a fresh mention as the alerter would; returns it and the drafts'
    origins."""
    mention = await stored(core, text)
    await llm.triager.triage([mention.id])
    mention = await core.store.mentions.get(mention.id)
    drafts = await llm.drafter.draft(mention, core.config.brands[0], variants=2)
    return mention, [d.origin or "llm" for d in drafts]


async def test_a_server_that_stops_answering_is_left_alone_then_used_again(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    bus, clock = RecordingBus(), FakeClock()
    async with clocked_llm(core, fake_openai, bus, clock) as llm:
        first, origins = await handle(core, llm, "acme cloud, is there a refund?")
        assert first.triage is not None and first.triage.by == "fake-draft"
        assert origins == ["llm", "llm"]
        assert len(fake_openai.requests) == 2

        fake_openai.then(DOWN, DOWN, DOWN)
        mention, origins = await handle(core, llm, "acme cloud lost my files?")
        # triage tried three times, then the breaker opened: no fourth attempt, and the
        # draft went straight to the templates
        assert len(fake_openai.requests) == 5
        assert mention.triage is not None and mention.triage.by == "rules"
        assert origins == ["offline", "offline"]
        endpoint = fake_openai.base_url
        assert bus.notices() == [
            f"The language model at {endpoint} is not answering (HTTP 503); drafts use the "
            "saved templates and triage the keyword rules until it is back. Check that the "
            "server is running."
        ]

        for n in range(4):  # the cool-down: nothing reaches the server, nothing waits
            clock.advance(10)
            mention, origins = await handle(core, llm, ASKS[n])
            assert mention.triage is not None and mention.triage.by == "rules"
            assert origins == ["offline", "offline"]
        with pytest.raises(UserFacingError, match="could not redraft: the language model at"):
            await llm.drafter.draft(mention, core.config.brands[0], instruction="warmer")
        assert len(fake_openai.requests) == 5 and len(bus.notices()) == 1
        (line,) = await health_lines(core.store)
        assert line.startswith(f"✘ LLM at {endpoint}: not answering since ")
        assert "(HTTP 503); drafts from templates, triage by rules; next try " in line
        assert line.endswith("; 5 calls, 3 failed")

        clock.advance(20)  # 60 s after it opened: one probe, answered
        mention, origins = await handle(core, llm, "acme cloud is back?")
        assert mention.triage is not None and mention.triage.by == "fake-draft"
        assert origins == ["llm", "llm"]
        assert len(fake_openai.requests) == 7
        assert bus.notices()[1:] == [
            f"The language model at {endpoint} is answering again; drafts come from it."
        ]
        (line,) = await health_lines(core.store)
        assert line.startswith(f"✔ LLM at {endpoint}: answering; 7 calls, 3 failed; last error ")
        assert line.endswith("UTC: HTTP 503")


async def test_a_failed_probe_doubles_the_cool_down(core: Core, fake_openai: FakeOpenAI) -> None:
    bus, clock = RecordingBus(), FakeClock()
    async with clocked_llm(core, fake_openai, bus, clock) as llm:
        fake_openai.then(DOWN, DOWN, DOWN, DOWN)
        await handle(core, llm, "acme cloud lost my files?")
        assert len(fake_openai.requests) == 3
        clock.advance(60)
        _, origins = await handle(core, llm, ASKS[0])
        assert len(fake_openai.requests) == 4  # the probe alone, refused: no retry, no draft call
        assert origins == ["offline", "offline"]
        clock.advance(119)
        await handle(core, llm, ASKS[1])
        assert len(fake_openai.requests) == 4  # 120 s this time
        clock.advance(1)
        _, origins = await handle(core, llm, ASKS[2])
        assert origins == ["llm", "llm"] and len(fake_openai.requests) == 6
        assert [n.split(" is ")[1][:14] for n in bus.notices()] == [
            "not answering ",
            "answering agai",
        ]


async def test_connection_refused_is_named_and_told_once(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    bus, clock = RecordingBus(), FakeClock()
    port = int(fake_openai.base_url.rsplit(":", 1)[1].split("/")[0])
    async with clocked_llm(core, fake_openai, bus, clock) as llm:
        await fake_openai.stop()
        for n in range(3):
            _, origins = await handle(core, llm, ASKS[n])
            assert origins == ["offline", "offline"]
        (notice,) = bus.notices()
        assert notice.startswith(
            f"The language model at http://127.0.0.1:{port}/v1 is not answering "
            "(connection refused); drafts use the saved templates"
        )
        assert llm.client is not None and llm.client.breaker.calls == 3

        await fake_openai.start(port)  # the server is back
        clock.advance(60)
        _, origins = await handle(core, llm, "acme cloud back?")
        assert origins == ["llm", "llm"]
        assert len(bus.notices()) == 2 and "answering again" in bus.notices()[1]


def client(fake_openai: FakeOpenAI, store: Store, bus: EventBus, **kw: Any) -> LlmClient:
    options: dict[str, Any] = {"timeout": 5.0, "max_retries": 0, "backoff": 0.001} | kw
    config = LlmConfig(model="fake-model", api_key="k", base_url=fake_openai.base_url, **options)
    return LlmClient(config, store, bus, clock=FakeClock())


async def draft_call(llm: LlmClient) -> list[str]:
    texts, _ = await llm.complete_json(
        [{"role": "user", "content": "Write 2 reply variants to the mention below."}],
        model="fake-model",
        schema_name="parley_draft",
        schema=DRAFT_SCHEMA,
        parse=parse_variants,
        task=JsonTask("draft", "acme", 1),
        max_tokens=100,
    )
    return texts


async def test_a_bad_prompt_is_not_an_outage(fake_openai: FakeOpenAI, store: Store) -> None:
    bus = RecordingBus()
    llm = client(fake_openai, store, bus, json_schema="off")
    fake_openai.then(DOWN, DOWN, BAD_PROMPT, DOWN, DOWN, BAD_PROMPT, BAD_PROMPT, BAD_PROMPT)
    try:
        for _ in range(8):
            with pytest.raises(LlmUnavailable):
                await draft_call(llm)
        assert llm.available and llm.breaker.state == "closed"
        assert await draft_call(llm)
    finally:
        await llm.aclose()
    assert len(fake_openai.requests) == 9 and bus.notices() == []
    assert (llm.breaker.calls, llm.breaker.failures) == (9, 4)


async def test_a_slow_server_is_told_to_raise_the_timeout(
    fake_openai: FakeOpenAI, store: Store
) -> None:
    bus = RecordingBus()
    llm = client(fake_openai, store, bus, timeout=0.2, breaker=BreakerPolicy(threshold=1))
    fake_openai.then(Step("sleep", delay=1.0))
    try:
        with pytest.raises(LlmUnavailable):
            await draft_call(llm)
        with pytest.raises(LlmPaused):
            await draft_call(llm)
    finally:
        await llm.aclose()
    (notice,) = bus.notices()
    assert "is not answering (no answer within 0.2 s);" in notice
    assert notice.endswith(
        "Check that the server is running. If it is only slow, raise PARLEY_LLM_TIMEOUT "
        "(docs/llm.md)."
    )
    assert len(fake_openai.requests) == 1


def test_the_cool_down_doubles_up_to_its_cap_and_one_probe_goes_at_a_time() -> None:
    clock = FakeClock()
    breaker = Breaker("http://llm/v1", BreakerPolicy(threshold=2), clock=clock)
    for _ in range(2):
        breaker.failed("connection refused", breaker.acquire())
    waits = []
    for _ in range(6):
        start = clock.now
        while not breaker.available:
            clock.advance(1)
        waits.append(clock.now - start)
        probe = breaker.acquire()
        assert probe
        with pytest.raises(LlmPaused, match="not answering \\(connection refused\\)"):
            breaker.acquire()  # the probe is still out: others use the templates
        breaker.failed("connection refused", probe)
    assert waits == [60, 120, 240, 480, 600, 600]
    clock.advance(600)
    assert breaker.succeeded(breaker.acquire()) is not None and breaker.state == "closed"
    breaker.failed("timed out", breaker.acquire())
    breaker.failed("timed out", breaker.acquire())
    start = clock.now
    while not breaker.available:
        clock.advance(1)
    assert clock.now - start == 60  # closing reset the cool-down


async def test_status_and_sources_show_the_model(
    tmp_path: Path, fake_openai: FakeOpenAI, config: ParleyConfig
) -> None:
    settings = llm_settings(tmp_path, fake_openai, parley_llm_max_retries=0)
    async with build_core(settings, config) as core:
        (before,) = await ConsoleFrontend(core).handle_line("sources")
        assert before == f"✔ LLM at {fake_openai.base_url}: answering; 0 calls, 0 failed"
        fake_openai.then(DOWN, DOWN, DOWN)
        for n in range(4):
            mention = await stored(core, ASKS[n])
            await core.review.draft(mention.id, SYSTEM, notify=False)
        (line,) = await ConsoleFrontend(core).handle_line("sources")
        assert line.startswith(f"✘ LLM at {fake_openai.base_url}: not answering since ")
    report = await status(settings)
    assert report[:2] == ["Sources:", f"  {line}"]
    assert len(fake_openai.requests) == 3

    offline = llm_settings(tmp_path, fake_openai, openai_base_url=None, openai_api_key=None)
    async with build_core(offline, config) as core:
        assert await ConsoleFrontend(core).handle_line("sources") == ["No sources configured."]


def test_the_breaker_thresholds_come_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        parley_llm_breaker_failures=5,
        parley_llm_cooldown_seconds=120,
        parley_llm_max_cooldown_seconds=30,
    )
    policy = llm_config(settings).breaker
    assert (policy.threshold, policy.cooldown, policy.max_cooldown) == (5, 120.0, 120.0)
    assert llm_config(Settings(_env_file=None)).breaker == BreakerPolicy()
