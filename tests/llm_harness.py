"""The LLM client against the fake model, for tests of more than one module: a client with short
timeouts, one drafting call, and an event bus that records what is published."""

from __future__ import annotations

from typing import Any

from bot.drafting.llm import DRAFT_SCHEMA, parse_variants
from bot.events import Event, EventBus
from bot.llm.client import JsonTask, LlmClient, LlmConfig
from bot.storage.store import Store
from fakes.openai import FakeOpenAI

MESSAGES: list[Any] = [
    {"role": "system", "content": "# Task: draft replies"},
    {"role": "user", "content": "Write 2 reply variants to the mention below."},
]


class RecordingBus(EventBus):
    """Keeps what is published, for assertions."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def llm_client(fake: FakeOpenAI, store: Store, bus: EventBus | None = None, **kw: Any) -> LlmClient:
    """A client of the fake model (short timeout, quick retries) publishing to ``bus``."""
    options: dict[str, Any] = {"timeout": 0.3, "max_retries": 2, "backoff": 0.01} | kw
    config = LlmConfig(model="fake-model", api_key="test-key", base_url=fake.base_url, **options)
    return LlmClient(config, store, bus or RecordingBus())


async def draft_call(llm: LlmClient) -> list[str]:
    """One drafting call with the drafter's schema; the variants."""
    texts, _ = await llm.complete_json(
        MESSAGES,
        model="fake-model",
        schema_name="parley_draft",
        schema=DRAFT_SCHEMA,
        parse=parse_variants,
        task=JsonTask("draft", "acme", 1),
        max_tokens=500,
    )
    return texts
