"""Small builders and steps shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from bot.app import Core
from bot.connectors.base import Cursor, FetchResult, Publisher, PublishResult, Source
from bot.connectors.http.api_client import ApiClient
from bot.connectors.registry import Publishers
from bot.domain.models import (
    Actor,
    Author,
    Draft,
    Mention,
    RawMention,
    Reply,
    Sentiment,
    Triage,
    utcnow,
)
from bot.domain.states import MentionState, ReplyState
from bot.errors import PublishError
from bot.settings import Settings
from bot.storage.mentions import NewMention
from bot.storage.store import Store
from fakes.openai import FakeOpenAI
from fakes.telegram import FakeTelegram
from fakes.x import KEYS_ENV
from tests.conftest import ROOT

CM = Actor(platform="console", user_id="cm", display_name="Ana")
"""The community manager, approving from the console."""


def raw(
    external_id: str,
    text: str,
    *,
    source: str = "feed",
    platform: str = "rss",
    url: str | None = None,
    created_at: datetime | None = None,
    language: str | None = "en",
    handle: str = "someone",
    reach: int | None = 120,
) -> RawMention:
    """A raw item as a source would yield it."""
    return RawMention(
        source=source,
        platform=platform,
        external_id=external_id,
        url=url or f"https://example.com/posts/{external_id}",
        author=Author(handle=handle, display_name=handle.title(), reach=reach),
        text=text,
        language=language,
        created_at=created_at or utcnow() - timedelta(minutes=5),
    )


def approved_mention(
    *, platform: str, source: str, external_id: str, url: str | None, handle: str, **overrides: Any
) -> Mention:
    """Mention #1 as a publisher gets it: approved, for brand ``acme``, in English."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": 1,
        "source": source,
        "platform": platform,
        "external_id": external_id,
        "url": url,
        "canonical_url": url,
        "author": Author(handle=handle),
        "title": None,
        "text": "text",
        "language": "en",
        "created_at": now,
        "fetched_at": now,
        "brand": "acme",
        "rule": "r",
        "state": MentionState.APPROVED,
        **overrides,
    }
    return Mention.model_validate(values)


def sending_reply(text: str, *, publisher: str, key: str = "k-1", attempts: int = 0) -> Reply:
    """Reply #1 to mention #1 as the outbox hands it to ``publisher``: approved five seconds
    ago, being sent now (``attempts`` counts this one)."""
    now = utcnow()
    return Reply(
        id=1,
        mention_id=1,
        text=text,
        publisher=publisher,
        idempotency_key=key,
        state=ReplyState.SENDING,
        attempts=attempts,
        approved_by="telegram:cm",
        created_at=now - timedelta(seconds=5),
        updated_at=now,
    )


class ClientPublisher(Protocol):
    """A connector's publisher: posts through an API client the caller closes."""

    @property
    def client(self) -> ApiClient: ...

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult: ...


PublisherT = TypeVar("PublisherT", bound=ClientPublisher)


@asynccontextmanager
async def opened(publisher: PublisherT) -> AsyncIterator[PublisherT]:
    """``publisher`` for the block; its API client is closed on the way out."""
    try:
        yield publisher
    finally:
        await publisher.client.aclose()


class SlowToAnswer(Protocol):
    """A fake platform that can hold its answer to a post (the post itself is made at once)."""

    post_delay: float


async def publish_answer_lost(
    fake: SlowToAnswer, publisher: ClientPublisher, reply: Reply, mention: Mention
) -> PublishError:
    """Publish through ``publisher`` (made with a timeout under 1 s) while ``fake`` holds its
    answer for a minute: the post lands, the answer never arrives. Returns the error raised;
    afterwards the fake answers at once again (the held answer's handler ends with its
    connection), and the publisher's client is closed."""
    fake.post_delay = 60.0
    async with opened(publisher):
        with pytest.raises(PublishError) as info:
            await publisher.publish(reply, mention)
    fake.post_delay = 0.0
    return info.value


async def killed_once_stored(work: Coroutine[Any, Any, object], stored: asyncio.Event) -> None:
    """Run ``work`` and kill it once the platform has ``stored`` the post, before its answer
    comes back: a worker dying mid-post."""
    task = asyncio.create_task(work)
    await asyncio.wait_for(stored.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def post_through(core: Core, name: str, publisher: Publisher) -> None:
    """Make ``publisher``, under ``name``, the only publisher of ``core``'s review and outbox."""
    core.review.publishers = core.outbox.publishers = Publishers({name: publisher}, default=name)


async def approve_first_find(core: Core, source: Source, text: str) -> Reply:
    """Store and alert the one mention a first poll of ``source`` finds, and approve it as
    :data:`CM` edited to ``text``."""
    batch = await core.ingestor.store_batch((await source.fetch({})).items)
    [alerted] = await core.alerter.alert(batch, first_poll=False)
    await core.review.edit(alerted.id, text, CM)
    return await core.review.approve(alerted.id, CM)


@dataclass
class ScriptedSource:
    """A source that replays scripted results (a list of FetchResult or exceptions)."""

    name: str
    script: list[FetchResult | Exception]
    interval: float = 0.01
    cursors: list[Cursor] = field(default_factory=list)

    async def fetch(self, cursor: Cursor) -> FetchResult:
        self.cursors.append(dict(cursor))
        step = self.script.pop(0) if self.script else FetchResult([], cursor)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        return None


class SteppedClock:
    """A wall clock for the outbox that runs with real time and jumps forward when the test
    calls :meth:`advance`, so a backoff of minutes passes at once (times stamped by the real
    clock are never ahead of it). A sleep ends when either gets to its end."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._sleepers: set[asyncio.Event] = set()

    def now(self) -> datetime:
        """Real UTC time plus every advance so far."""
        return utcnow() + self.offset

    async def sleep(self, seconds: float) -> None:
        """Wait until this clock has moved ``seconds`` on."""
        end = self.now() + timedelta(seconds=seconds)
        moved = asyncio.Event()
        self._sleepers.add(moved)
        try:
            while (left := (end - self.now()).total_seconds()) > 0:
                moved.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), left)
        finally:
            self._sleepers.discard(moved)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on at once, ending the sleeps that this reaches."""
        self.offset += timedelta(seconds=seconds)
        for moved in self._sleepers:
            moved.set()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    within: float = 30.0,
    *,
    interval: float = 0.02,
    process: asyncio.subprocess.Process | None = None,
    log: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` (plain or async) until it holds, failing after a generous deadline:
    for effects that no event announces, such as a chat frontend acting on a button after
    deferring it. When the effect is a worker ``process``'s, its exit fails the wait at once;
    ``log`` (what the process wrote, say) is shown with any failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        code = None if process is None else process.returncode
        if code is not None or loop.time() > deadline:
            how = "timed out" if code is None else f"the process exited with {code}"
            pytest.fail(f"{how} waiting for {what}" + (f":\n{log()}" if log else ""))
        await asyncio.sleep(interval)


async def mention_reaches(core: Core, mention_id: int, *states: MentionState) -> None:
    """Wait until a mention is in one of ``states`` (then ``core.settle()`` finishes the rest)."""

    async def reached() -> bool:
        return (await core.store.mentions.get(mention_id)).state in states

    await eventually(reached, f"mention #{mention_id} to be {'/'.join(s.value for s in states)}")


MODEL_CHAT_TOKEN = "7000000001:AAH-secret-test-token_0123456789abcdef"
MODEL_CHAT_ID = -1001234567890


def model_settings(
    tmp_path: Path, model: FakeOpenAI, telegram: FakeTelegram | None = None, **more: Any
) -> Settings:
    """Settings for a core drafting and triaging with the fake model, with the fake Telegram as
    its chat when given (alert chat MODEL_CHAT_ID, approver 111). The model's timeout is long:
    a request a test holds must not time out before the test releases it."""
    chat: dict[str, Any] = {}
    if telegram is not None:
        chat = {
            "telegram_bot_token": MODEL_CHAT_TOKEN,
            "telegram_api_base_url": telegram.base_url,
            "telegram_alert_chat_id": str(MODEL_CHAT_ID),
            "telegram_approver_ids": "111",
        }
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        parley_default_publisher="log",
        openai_base_url=model.base_url,
        openai_api_key="test-key",
        openai_model="fake-draft",
        parley_llm_timeout=60.0,
        parley_llm_max_retries=0,
        parley_triage_window_seconds=0.0,
        **chat,
        **more,
    )


def set_x_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the four OAuth 1.0a keys the fake X accepts in the environment for the test."""
    for name, value in KEYS_ENV.items():
        monkeypatch.setenv(name, value)


def drafted_mention(text: str = "Is acme cloud down?", **changes: object) -> Mention:
    """A drafted Reddit mention (#12) of acme by Ann, with ``changes`` applied."""
    now = utcnow()
    base = Mention(
        id=12,
        source="reddit-acme",
        platform="reddit",
        external_id="t3_x",
        url="https://reddit.com/r/acme/1",
        canonical_url="https://reddit.com/r/acme/1",
        author=Author(handle="ann", display_name="Ann", reach=3400),
        title=None,
        text=text,
        language="en",
        created_at=now,
        fetched_at=now,
        brand="acme",
        rule="outage",
        state=MentionState.DRAFTED,
    )
    return base.model_copy(update=changes)


def drafts(*texts: str, selected: int = 1) -> list[Draft]:
    """Offline drafts for mention #12, one per text; ``selected`` is the chosen one."""
    return [
        Draft(
            id=i,
            mention_id=12,
            variant=i,
            text=t,
            origin="offline",
            created_at=utcnow(),
            selected=i == selected,
        )
        for i, t in enumerate(texts, start=1)
    ]


async def put_mention(
    store: Store,
    at: datetime,
    sentiment: Sentiment | None = None,
    brand: str = "acme",
) -> int:
    """Store one mention fetched at ``at``, triaged with ``sentiment`` (None: not triaged)."""
    item = NewMention(
        raw=raw(f"m{at.timestamp()}-{sentiment}-{brand}", "acme text"),
        brand=brand,
        rule="any",
        urgent=False,
        canonical_url=None,
        fingerprint=0,
    )
    await store.mentions.insert_batch([item], [])
    await store.db.execute(
        "UPDATE mentions SET fetched_at = ? WHERE id = ?", (at.isoformat(), item.id)
    )
    if sentiment is not None:
        triage = Triage(
            relevant=True, sentiment=sentiment, urgency="normal", needs_reply=True, by="rules"
        )
        await store.mentions.save_triage([(item.id, "question", triage, False)])
    return item.id


def rss_feed(
    items: str, *, declaration: bytes = b'<?xml version="1.0" encoding="utf-8"?>'
) -> bytes:
    """An RSS 2.0 document around ``items`` (raw ``<item>`` XML)."""
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    return declaration + body.encode()
