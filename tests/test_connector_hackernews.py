"""HackerNewsSource against a fake Algolia HN Search server on loopback (fakes/hackernews.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web
from pydantic import ValidationError

from bot.connectors.hackernews.connector import HackerNewsSource, HackerNewsSourceConfig
from bot.errors import SourceError, SourceRateLimited
from fakes.hackernews import COMMENT_HIT, FakeAlgolia, comment, story


@pytest.fixture
async def algolia() -> AsyncIterator[FakeAlgolia]:
    fake = FakeAlgolia()
    app = web.Application()
    app.router.add_get("/api/v1/search_by_date", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def source(algolia: FakeAlgolia) -> AsyncIterator[HackerNewsSource]:
    config = HackerNewsSourceConfig(
        type="hackernews",
        name="hn",
        queries=["nimbus notes"],
        base_url=algolia.base,
        allow_private=True,  # the fake server is on loopback
    )
    hn = HackerNewsSource(config)
    yield hn
    await hn.aclose()


async def test_first_poll_normalises_comments_and_stories(
    algolia: FakeAlgolia, source: HackerNewsSource
) -> None:
    algolia.hits = [
        COMMENT_HIT,
        story(40000001, 1_700_000_100, "Show HN: Nimbus Notes", "<p>We built it &amp; more</p>"),
        story(40000002, 1_700_000_200, "Nimbus Notes 2.0 is out"),
    ]
    result = await source.fetch({})
    by_id = {m.external_id: m for m in result.items}
    assert set(by_id) == {"30826999", "40000001", "40000002"}
    hit = by_id["30826999"]
    assert hit.platform == "hackernews"
    assert hit.url == "https://news.ycombinator.com/item?id=30826999"
    assert hit.text.startswith("Modern AAA games are like Opera")
    assert "freakin' slog" in hit.text  # the HTML entity is decoded
    assert hit.author.handle == "quxbar"
    assert hit.author.profile_url == "https://news.ycombinator.com/user?id=quxbar"
    assert hit.author.reach is None  # points are not a reach figure
    assert hit.thread_context == "I hate what video games have become"
    assert hit.parent_ref == "30825405"
    assert hit.title is None
    assert hit.created_at == datetime(2022, 3, 28, 3, 58, 56, tzinfo=UTC)
    show = by_id["40000001"]
    assert (show.title, show.text) == ("Show HN: Nimbus Notes", "We built it & more")
    assert show.thread_context is None and show.parent_ref is None
    assert by_id["40000002"].text == "Nimbus Notes 2.0 is out"  # no story text: the title
    (query,) = algolia.queries
    assert query["query"] == "nimbus notes"
    assert query["tags"] == "(story,comment)"
    assert query["hitsPerPage"] == "100"
    assert "numericFilters" not in query  # first poll: newest page only
    assert result.cursor == {"nimbus notes": "1700000200:40000002"}


async def test_cursor_resumes_and_keeps_ties_at_the_watermark(
    algolia: FakeAlgolia, source: HackerNewsSource
) -> None:
    algolia.hits = [comment(1, 1_700_000_000), comment(2, 1_700_000_050)]
    first = await source.fetch({})
    assert first.cursor == {"nimbus notes": "1700000050:2"}
    # A later hit in the same second as the watermark, one after it, and nothing else new.
    algolia.hits += [comment(3, 1_700_000_050), comment(4, 1_700_000_090)]
    second = await source.fetch(first.cursor)  # as after a restart: only the cursor survives
    assert sorted(m.external_id for m in second.items) == ["3", "4"]
    assert algolia.queries[-1]["numericFilters"] == "created_at_i>=1700000050"
    assert second.cursor == {"nimbus notes": "1700000090:4"}
    third = await source.fetch(second.cursor)
    assert third.items == [] and third.cursor == second.cursor


async def test_pages_until_the_answer_runs_out(
    algolia: FakeAlgolia, source: HackerNewsSource
) -> None:
    algolia.hits = [comment(1, 1_000)]
    cursor = (await source.fetch({})).cursor
    algolia.hits += [comment(10 + i, 2_000 + i) for i in range(250)]
    result = await source.fetch(cursor)
    assert len(result.items) == 250
    assert [q["page"] for q in algolia.queries[1:]] == ["0", "1", "2"]
    assert result.cursor == {"nimbus notes": "2249:259"}


async def test_page_cap_is_logged(algolia: FakeAlgolia, caplog: pytest.LogCaptureFixture) -> None:
    config = HackerNewsSourceConfig(
        type="hackernews",
        name="hn",
        queries=["x"],
        base_url=algolia.base,
        max_pages=1,
        allow_private=True,
    )
    hn = HackerNewsSource(config)
    algolia.hits = [comment(10 + i, 2_000 + i) for i in range(150)]
    with caplog.at_level(logging.WARNING):
        result = await hn.fetch({"x": "1000:"})
    await hn.aclose()
    assert len(result.items) == 100  # the newest hundred
    assert "more than 100 new hits" in caplog.text


async def test_429_with_retry_after_keeps_the_cursor(
    algolia: FakeAlgolia, source: HackerNewsSource
) -> None:
    algolia.failures = [(429, {"Retry-After": "42"})]
    with pytest.raises(SourceRateLimited) as caught:
        await source.fetch({"nimbus notes": "1700000000:1"})
    assert caught.value.retry_after == 42.0
    assert "429" in str(caught.value) and "hn" in str(caught.value)


async def test_5xx_then_recovery(algolia: FakeAlgolia, source: HackerNewsSource) -> None:
    algolia.hits = [comment(1, 1_700_000_000)]
    algolia.failures = [(503, {})]
    with pytest.raises(SourceError, match="HTTP 503"):
        await source.fetch({})
    result = await source.fetch({})
    assert [m.external_id for m in result.items] == ["1"]


async def test_invalid_json_is_a_source_error(source: HackerNewsSource) -> None:
    async def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    config = source.config
    async with httpx.AsyncClient(transport=httpx.MockTransport(garbage)) as client:
        hn = HackerNewsSource(config, client=client)
        with pytest.raises(SourceError, match="not valid JSON"):
            await hn.fetch({})


async def test_malformed_hit_is_skipped_with_a_log_line(
    algolia: FakeAlgolia, source: HackerNewsSource, caplog: pytest.LogCaptureFixture
) -> None:
    algolia.hits = [
        comment(1, 1_700_000_000),
        {**comment(2, 1_700_000_001), "objectID": None},
        {**comment(3, 1_700_000_002), "created_at_i": "yesterday"},
        comment(4, 1_700_000_003, text=""),
    ]
    with caplog.at_level(logging.WARNING):
        result = await source.fetch({})
    assert [m.external_id for m in result.items] == ["1"]
    assert "malformed hit (bad objectID 'None')" in caplog.text
    assert "bad created_at_i 'yesterday'" in caplog.text
    assert "hit 4 with no text" in caplog.text
    assert result.cursor == {"nimbus notes": "1700000000:1"}


async def test_several_queries_keep_their_own_watermark(algolia: FakeAlgolia) -> None:
    config = HackerNewsSourceConfig(
        type="hackernews",
        name="hn",
        queries=["nimbus", "nimbus notes"],
        kinds=["comment"],
        base_url=algolia.base + "/",
        allow_private=True,
    )
    hn = HackerNewsSource(config)
    algolia.hits = [comment(1, 1_700_000_000)]
    result = await hn.fetch({"nimbus": "1600000000:"})
    await hn.aclose()
    assert [m.external_id for m in result.items] == ["1"]  # same hit from both: once
    assert result.cursor == {"nimbus": "1700000000:1", "nimbus notes": "1700000000:1"}
    assert {q["tags"] for q in algolia.queries} == {"(comment)"}


async def test_no_hits_on_first_poll_leaves_it_a_first_poll(
    algolia: FakeAlgolia, source: HackerNewsSource
) -> None:
    result = await source.fetch({})
    assert result.items == [] and result.cursor == {"nimbus notes": ""}
    await source.fetch(result.cursor)
    assert "numericFilters" not in algolia.queries[-1]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        HackerNewsSourceConfig(type="hackernews", name="hn", queries=[])
    with pytest.raises(ValidationError):
        HackerNewsSourceConfig(
            type="hackernews", name="hn", queries=["x"], base_url="hn.algolia.com"
        )
