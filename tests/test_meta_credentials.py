"""One expired Meta token gives one message: a Facebook Page source and an Instagram source
sharing the token, polled again and again against the fake Graph API answering OAuthException
190/463, tell the chat once and log one warning; when a source works again, a new refusal is
told again. A source with another token is told about on its own."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import pytest

from bot.app import Core
from bot.connectors.base import Source
from bot.connectors.facebook.connector import FacebookSource
from bot.connectors.instagram.connector import InstagramSource
from bot.events import Event, Notice
from bot.pipeline.credentials import RefusedCredentials
from bot.pipeline.runner import SourceRunner
from fakes.graph import IG_PERMISSIONS, IG_TOKEN, PAGE_PERMISSIONS, PAGE_TOKEN, FakeGraph
from tests.connectors import facebook_config, instagram_config

TOKEN_ENV = "META_PAGE_ACCESS_TOKEN"


async def notices_after(core: Core, runners: list[SourceRunner], rounds: int) -> list[str]:
    """Poll every runner ``rounds`` times; the notices the chat would get."""
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    core.bus.subscribe("test", record)
    stop = asyncio.Event()
    delivery = asyncio.create_task(core.bus.run(stop))
    for _ in range(rounds):
        for runner in runners:
            await runner.poll_once()
    await core.bus.drain()
    stop.set()
    await delivery
    return [e.text for e in seen if isinstance(e, Notice)]


async def test_a_shared_expired_token_is_told_once(
    core: Core, graph: tuple[FakeGraph, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = graph
    page = fake.actors[PAGE_TOKEN]
    page.permissions = PAGE_PERMISSIONS | IG_PERMISSIONS  # Facebook Login: one token for both
    page.expired = True
    refused = RefusedCredentials()
    async with AsyncExitStack() as stack:
        sources: list[Source] = [
            FacebookSource.create(facebook_config(url, name="acme-fb"), PAGE_TOKEN),
            InstagramSource.create(
                instagram_config(url, name="acme-ig", token_env=TOKEN_ENV), PAGE_TOKEN
            ),
            InstagramSource.create(instagram_config(url, name="other-ig"), IG_TOKEN),
        ]
        for source in sources:
            stack.push_async_callback(source.aclose)
        runners = [
            SourceRunner(s, core.store, core.ingestor, core.alerter, core.bus, refused=refused)
            for s in sources
        ]
        with caplog.at_level(logging.INFO, logger="bot.pipeline.runner"):
            notices = await notices_after(core, runners[:2], rounds=3)
        [told] = notices  # not one per source, nor one per poll
        assert told.startswith("Source acme-fb cannot sign in: facebook source 'acme-fb' (")
        assert (
            f"Meta refused the access token in {TOKEN_ENV} (expired; Graph error 190/463)" in told
        )
        assert f"set {TOKEN_ENV}=… in .env" in told and PAGE_TOKEN not in told
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == 1 and warned[0].exc_info is None

        # The page's token is renewed: both sources work, and a later expiry is news again.
        page.expired = False
        assert await notices_after(core, runners[:2], rounds=1) == [
            "Source acme-fb is working again.",
            "Source acme-ig is working again.",
        ]
        page.expired = True
        fake.actors[IG_TOKEN].expired = True
        again = await notices_after(core, runners, rounds=2)
    assert [n.split(":", 1)[0] for n in again] == [
        "Source acme-fb cannot sign in",
        "Source other-ig cannot sign in",
    ]
