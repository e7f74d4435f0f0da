"""Source health: last success, last error, items fetched, rate budget left, refused credentials;
the same lines in `parley status`, the console's `sources`, and told once in chat."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.__main__ import status
from bot.app import Core
from bot.connectors.base import FetchResult
from bot.errors import CredentialsRejected, SourceError
from bot.events import Event, Notice
from bot.frontends.console.frontend import ConsoleFrontend
from bot.pipeline.runner import SourceRunner
from bot.settings import Settings
from tests.helpers import ScriptedSource, raw


@dataclass
class BudgetedSource(ScriptedSource):
    """A scripted source whose platform reports calls left in its rate-limit window."""

    rate_limit_remaining: int | None = None


async def _notices(core: Core, runner: SourceRunner, polls: int) -> list[str]:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    core.bus.subscribe("test", record)
    stop = asyncio.Event()
    delivery = asyncio.create_task(core.bus.run(stop))
    for _ in range(polls):
        await runner.poll_once()
    await core.bus.drain()
    stop.set()
    await delivery
    return [e.text for e in seen if isinstance(e, Notice)]


def _runner(core: Core, source: ScriptedSource) -> SourceRunner:
    runner = SourceRunner(source, core.store, core.ingestor, core.alerter, core.bus)
    core.runners.append(runner)
    return runner


async def test_health_shows_budget_items_and_a_refused_token_told_once(
    core: Core, settings: Settings
) -> None:
    token_error = CredentialsRejected(
        "the access token in MASTODON_ACCESS_TOKEN was rejected (expired, revoked or mistyped)"
    )
    source = BudgetedSource(
        "masto",
        [
            FetchResult([raw("1", "acme cloud rocks", source="masto")], {"mentions": "5"}),
            token_error,
            token_error,
            token_error,
        ],
        rate_limit_remaining=287,
    )
    runner = _runner(core, source)
    _runner(core, ScriptedSource("news", []))

    notices = await _notices(core, runner, polls=1)
    assert notices == []
    (line,) = [x for x in await ConsoleFrontend(core).handle_line("sources") if "masto" in x]
    assert line.startswith("✔ masto: ok; 1 items fetched, rate-limit budget left: 287")
    assert "last success" in line

    source.rate_limit_remaining = 12
    notices = await _notices(core, runner, polls=3)
    assert len(notices) == 1  # a source that keeps failing is reported once
    assert notices[0].startswith("Source masto cannot sign in: the access token in ")
    assert "Renew the credential in .env" in notices[0]

    lines = await ConsoleFrontend(core).handle_line("sources")
    assert lines[0].startswith("✘ masto: credentials rejected (3 in a row since ")
    assert "MASTODON_ACCESS_TOKEN was rejected" in lines[0]
    assert "rate-limit budget left: 12" in lines[0] and "last success" in lines[0]
    assert lines[1] == "… news: not polled yet"

    # `parley status` reads the same health from the database file
    report = await status(settings)
    assert report[0] == "Sources:"
    assert report[1] == "  " + lines[0]


async def test_an_ordinary_failure_is_not_called_a_credential_problem(core: Core) -> None:
    runner = _runner(core, ScriptedSource("feed", [SourceError("feed: HTTP 503"), FetchResult([])]))
    notices = await _notices(core, runner, polls=1)
    assert notices == ["Source feed failed: feed: HTTP 503. Retrying with backoff."]
    (line,) = await ConsoleFrontend(core).handle_line("sources")
    assert line.startswith("✘ feed: failing (1 in a row since ")
    notices = await _notices(core, runner, polls=1)
    assert notices == ["Source feed is working again."]
    (line,) = await ConsoleFrontend(core).handle_line("sources")
    assert line.startswith("✔ feed: ok; 0 items fetched, last success ")
    assert "rate-limit" not in line  # RSS has no budget to show
