"""Triage batching: concurrent polls share LLM calls (counted at the fake server), a full batch
goes at once, window 0 sends each poll alone, a failed call falls back to the rules; the demo's
first poll shares calls and stores mentions in source order. Also the demo's allowed links."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, build_core
from bot.config import load_config, parse_config
from bot.demo.runner import demo_dir, demo_lookback
from bot.drafting.guards import link_allowed
from bot.settings import Settings
from bot.triage.batching import Coalescer
from bot.triage.model import Triager
from fakes.openai import FakeOpenAI, Step
from tests.conftest import ROOT
from tests.helpers import raw

CONFIG = parse_config(
    {
        "brands": [
            {"name": "acme", "rules": [{"name": "any", "query": "acme"}]},
            {"name": "zeta", "rules": [{"name": "any", "query": "zeta"}]},
        ]
    },
    "test.toml",
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def settings(tmp_path: Path, fake: FakeOpenAI, **kw: Any) -> Settings:
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        parley_default_publisher="log",
        openai_base_url=fake.base_url,
        openai_api_key="test-key",
        openai_triage_model="fake-triage",
        parley_llm_timeout=0.5,
        parley_llm_max_retries=1,
        parley_auto_draft=False,
        **kw,
    )


_IDS = itertools.count()
WORDS = ["export", "sync", "billing", "login", "pricing", "backup", "offline", "search"]


def distinct(brand: str, count: int) -> list[str]:
    """Questions different enough not to be taken for copies of each other."""
    return [f"{brand}: how does {WORDS[n]} work with {WORDS[-n - 1]} here?" for n in range(count)]


def triager(core: Core) -> Triager:
    assert core.llm is not None
    return core.llm.triager


async def stored(core: Core, *texts: str) -> list[int]:
    """Store one poll's mentions (not yet triaged); their ids."""
    batch = await core.ingestor.store_batch([raw(f"item-{next(_IDS)}", text) for text in texts])
    assert len(batch.new) == len(texts)
    return [n.id for n in batch.new]


def triage_calls(fake: FakeOpenAI) -> list[str]:
    """The user message of every triage request."""
    return [
        next(m["content"] for m in r["messages"] if m["role"] == "user")
        for r in fake.requests
        if r["response_format"]["json_schema"]["name"] == "parley_triage"
    ]


async def triaged_by(core: Core, ids: list[int]) -> set[str]:
    return {(await core.store.mentions.get(i)).triage.by for i in ids}  # type: ignore[union-attr]


async def test_concurrent_polls_share_one_call(tmp_path: Path, fake: FakeOpenAI) -> None:
    async with build_core(settings(tmp_path, fake, parley_triage_window_seconds=0.2), CONFIG) as c:
        polls = [
            await stored(c, "acme question one?", "acme: my lawyer will call"),
            await stored(c, "acme is broken", "love acme", "acme: another question?"),
            await stored(c, "acme, third poll?"),
        ]
        urgent = await asyncio.gather(*(triager(c).triage(ids) for ids in polls))
        calls = triage_calls(fake)
        assert len(calls) == 1
        assert all(f"mention id={i} " in calls[0] for ids in polls for i in ids)
        # each caller gets its own results: the crisis is urgent for the first poll only
        assert urgent == [{polls[0][1]}, set(), set()]
        assert await triaged_by(c, [i for ids in polls for i in ids]) == {"fake-triage"}


async def test_brands_are_triaged_in_separate_calls(tmp_path: Path, fake: FakeOpenAI) -> None:
    async with build_core(settings(tmp_path, fake, parley_triage_window_seconds=0.2), CONFIG) as c:
        first = await stored(c, "acme: is there an api?", "zeta: is sync broken?")
        second = await stored(c, "zeta: where are the invoices?")
        await asyncio.gather(triager(c).triage(first), triager(c).triage(second))
        calls = sorted(triage_calls(fake), key=len)
        assert len(calls) == 2
        assert f"id={first[0]} " in calls[0]
        assert f"id={first[1]} " in calls[1] and f"id={second[0]} " in calls[1]


async def test_a_full_batch_goes_without_waiting(tmp_path: Path, fake: FakeOpenAI) -> None:
    window = settings(tmp_path, fake, parley_triage_window_seconds=30, parley_llm_triage_batch=3)
    async with build_core(window, CONFIG) as c:
        a, b, third = distinct("acme", 3)
        first, second = await stored(c, a, b), await stored(c, third)
        # far sooner than the 30 s window: the third mention fills the batch
        await asyncio.wait_for(
            asyncio.gather(triager(c).triage(first), triager(c).triage(second)), 5
        )
        assert len(triage_calls(fake)) == 1
        assert await triaged_by(c, first + second) == {"fake-triage"}


async def test_window_zero_sends_each_poll_alone(tmp_path: Path, fake: FakeOpenAI) -> None:
    no_window = settings(tmp_path, fake, parley_triage_window_seconds=0, parley_llm_triage_batch=2)
    async with build_core(no_window, CONFIG) as c:
        texts = distinct("acme", 7)
        first, second = await stored(c, texts[0]), await stored(c, texts[1])
        await asyncio.gather(triager(c).triage(first), triager(c).triage(second))
        assert len(triage_calls(fake)) == 2
        await triager(c).triage(await stored(c, *texts[2:]))
        assert len(triage_calls(fake)) == 2 + 3  # 2 + 2 + 1 mentions


async def test_a_failed_call_falls_back_to_rules_for_its_batch(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    async with build_core(settings(tmp_path, fake, parley_triage_window_seconds=0.1), CONFIG) as c:
        fake.then(*[Step("status", status=500, headers={"retry-after-ms": "1"})] * 2)
        a, b, c_text = distinct("acme", 3)
        first, second = await stored(c, a), await stored(c, b)
        await asyncio.gather(triager(c).triage(first), triager(c).triage(second))
        assert len(fake.requests) == 2  # one batch, tried twice
        assert await triaged_by(c, first + second) == {"rules"}
        later = await stored(c, c_text)
        await triager(c).triage(later)
        assert await triaged_by(c, later) == {"fake-triage"}


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_call() -> None:
    sent: list[list[int]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def send(items: list[int]) -> dict[int, str]:
        sent.append(items)
        started.set()
        await release.wait()
        return {i: f"r{i}" for i in items}

    batches: Coalescer[int, str] = Coalescer(
        send, group=lambda i: "g", ident=lambda i: i, size=10, window=0.05
    )
    impatient = asyncio.create_task(batches.submit([1]))
    patient = asyncio.create_task(batches.submit([2, 3]))
    await started.wait()
    impatient.cancel()
    release.set()
    assert await patient == {2: "r2", 3: "r3"}
    assert sent == [[1, 2, 3]]
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_the_demo_poll_shares_calls_and_keeps_source_order(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    config = load_config(demo_dir() / "parley.demo.toml")
    s = settings(tmp_path, fake, parley_triage_window_seconds=0.3)
    async with build_core(s, config, base_dir=demo_dir(), lookback=demo_lookback()) as core:
        await core.poll_all_once()
        await core.settle()  # the model's triage follows the alerts
        rows = await core.store.db.fetchall("SELECT id, source, triage_by FROM mentions")
    assert len(rows) == 29 and {r[2] for r in rows} == {"fake-triage"}
    assert len(triage_calls(fake)) == 2  # 20 + 9 mentions, from three feeds
    order = [str(r[1]) for r in sorted(rows, key=lambda r: int(r[0]))]
    sources = [src.name for src in config.sources]
    assert order == sorted(order, key=sources.index)  # ids follow the sources' order


def test_the_demo_and_example_brands_list_their_links() -> None:
    (nimbus,) = load_config(demo_dir() / "parley.demo.toml").brands
    # the links of the facts in prompts/brands/nimbus.md, e-mail domain included
    for link in ("status.nimbusnotes.app", "help.nimbusnotes.app/export", "nimbusnotes.app"):
        assert link_allowed(link, nimbus.allowed_links)
    assert not link_allowed("nimbusnotes.app.evil.example", nimbus.allowed_links)
    example = load_config(ROOT / "parley.example.toml")
    assert all(brand.allowed_links for brand in example.brands)
