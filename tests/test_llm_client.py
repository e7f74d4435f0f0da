"""The LLM client against the fake OpenAI-compatible server: JSON schema, repair, timeouts,
429 with Retry-After, 5xx, empty choices, the daily budget and the tolerant parser."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.drafting.llm import DRAFT_SCHEMA
from bot.events import Notice
from bot.llm.client import (
    BudgetExhausted,
    LlmBadOutput,
    LlmUnavailable,
    parse_json_object,
    retry_after_seconds,
)
from bot.storage.store import Store
from fakes.openai import FakeOpenAI, Step
from tests.llm_harness import RecordingBus, draft_call, llm_client


async def usage_rows(store: Store) -> list[tuple[str, int, int]]:
    rows = await store.db.fetchall(
        "SELECT purpose, prompt_tokens, completion_tokens FROM llm_usage ORDER BY id"
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_asks_for_a_json_schema_and_records_usage(
    fake_openai: FakeOpenAI, store: Store
) -> None:
    llm = llm_client(fake_openai, store)
    texts = await draft_call(llm)
    await llm.aclose()
    assert len(texts) == 2 and all("Thanks for reaching out" in t for t in texts)
    (request,) = fake_openai.requests
    assert request["model"] == "fake-model"
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["name"] == "parley_draft"
    assert request["response_format"]["json_schema"]["schema"] == DRAFT_SCHEMA
    ((purpose, prompt, completion),) = await usage_rows(store)
    assert purpose == "draft" and prompt > 0 and completion > 0
    assert (
        await store.llm_usage.tokens_on(datetime.now(UTC).date().isoformat()) == prompt + completion
    )


async def test_malformed_json_is_repaired_once(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("malformed"))
    llm = llm_client(fake_openai, store)
    texts = await draft_call(llm)
    await llm.aclose()
    assert len(texts) == 2
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": 'Sure! {"variants": ["Hi there", '}
    assert "only the JSON object" in repair[-1]["content"]
    assert [p for p, _, _ in await usage_rows(store)] == ["draft", "draft:repair"]


async def test_malformed_twice_is_an_error(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("malformed"), Step("content", content="no json here"))
    llm = llm_client(fake_openai, store)
    with pytest.raises(LlmBadOutput, match="not usable twice"):
        await draft_call(llm)
    await llm.aclose()
    assert len(fake_openai.requests) == 2


async def test_an_empty_choice_list_is_repaired(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("empty"))
    llm = llm_client(fake_openai, store)
    assert len(await draft_call(llm)) == 2
    await llm.aclose()
    assert "(empty answer)" in fake_openai.requests[1]["messages"][-2]["content"]


async def test_a_timeout_is_retried(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("sleep", delay=1.5))
    llm = llm_client(fake_openai, store, timeout=0.2)
    started = time.monotonic()
    assert len(await draft_call(llm)) == 2
    assert time.monotonic() - started < 1.2  # the first request was cut at 0.2 s, not awaited
    await llm.aclose()
    assert len(fake_openai.requests) == 2


async def test_timeouts_every_time_make_the_server_unavailable(
    fake_openai: FakeOpenAI, store: Store
) -> None:
    fake_openai.then(*[Step("sleep", delay=0.4)] * 2)
    llm = llm_client(fake_openai, store, timeout=0.1, max_retries=1)
    with pytest.raises(LlmUnavailable, match="failed 2 times \\(timed out\\)"):
        await draft_call(llm)
    await llm.aclose()
    assert await usage_rows(store) == []


async def test_429_honours_retry_after(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("status", status=429, headers={"Retry-After": "1"}))
    llm = llm_client(fake_openai, store, backoff=0.0)
    started = time.monotonic()
    assert len(await draft_call(llm)) == 2
    assert time.monotonic() - started >= 0.95
    await llm.aclose()
    assert len(fake_openai.requests) == 2


async def test_500_is_retried_then_given_up(fake_openai: FakeOpenAI, store: Store) -> None:
    fake_openai.then(Step("status", status=500, headers={"retry-after-ms": "10"}))
    llm = llm_client(fake_openai, store)
    assert len(await draft_call(llm)) == 2
    fake_openai.then(*[Step("status", status=503)] * 3)
    with pytest.raises(LlmUnavailable, match="failed 3 times \\(HTTP 503\\)"):
        await draft_call(llm)
    await llm.aclose()
    assert len(fake_openai.requests) == 5


async def test_a_server_without_json_schema_gets_the_tolerant_parser(
    fake_openai: FakeOpenAI, store: Store
) -> None:
    fake_openai.then(Step("refuse_schema"))
    llm = llm_client(fake_openai, store)
    assert len(await draft_call(llm)) == 2
    assert len(await draft_call(llm)) == 2
    await llm.aclose()
    assert "response_format" in fake_openai.requests[0]
    assert all("response_format" not in r for r in fake_openai.requests[1:])


async def test_the_daily_budget_pauses_calls_with_one_notice(
    fake_openai: FakeOpenAI, store: Store
) -> None:
    bus = RecordingBus()
    llm = llm_client(fake_openai, store, bus, daily_tokens=20)
    await draft_call(llm)  # the first call spends more than the budget
    for _ in range(2):
        with pytest.raises(BudgetExhausted, match="budget \\(20 tokens\\) is used up"):
            await draft_call(llm)
    await llm.aclose()
    assert len(fake_openai.requests) == 1
    notices = [e for e in bus.events if isinstance(e, Notice)]
    assert len(notices) == 1 and "PARLEY_LLM_DAILY_TOKENS" in notices[0].text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"variants": ["a"]}', {"variants": ["a"]}),
        ('```json\n{"variants": ["a"]}\n```', {"variants": ["a"]}),
        ('Here you go: {"variants": ["a {b}"]} hope it helps', {"variants": ["a {b}"]}),
        ('{"variants": ["a", "b",],}', {"variants": ["a", "b"]}),
        ('{"variants": ["say \\"}\\" please"]}', {"variants": ['say "}" please']}),
    ],
)
def test_tolerant_parser(content: str, expected: object) -> None:
    assert parse_json_object(content) == expected


@pytest.mark.parametrize("content", ["", "no json", "[1, 2]", '{"variants": ['])
def test_tolerant_parser_refuses(content: str) -> None:
    with pytest.raises(ValueError):
        parse_json_object(content)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert retry_after_seconds({}) is None
