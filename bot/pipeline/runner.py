"""Supervised source loops: each source polls on its own interval with its own cursor and
exponential backoff; one failing source never stops the others, and its error is visible.
``poll_together`` polls several sources at once (the demo's first poll), sharing triage calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.connectors.base import Budgeted, FetchResult, Source
from bot.errors import CredentialsRejected, SourceError, SourceRateLimited
from bot.events import EventBus, Notice
from bot.pipeline.credentials import RefusedCredentials
from bot.pipeline.ingest import Alerter, Ingestor, StoredBatch
from bot.storage.source_health import SourceStatus
from bot.storage.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0


@dataclass
class Fetched:
    """A successful fetch, waiting to be stored."""

    status: SourceStatus
    result: FetchResult


@dataclass
class PollOutcome:
    """What one poll did, for logs and tests."""

    fetched: int = 0
    new: int = 0
    copies: int = 0
    alerted: int = 0
    error: str | None = None
    retry_after: float | None = None


class SourceRunner:
    """Polls one source forever (until stopped)."""

    def __init__(
        self,
        source: Source,
        store: Store,
        ingestor: Ingestor,
        alerter: Alerter,
        bus: EventBus,
        *,
        refused: RefusedCredentials | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.ingestor = ingestor
        self.alerter = alerter
        self.bus = bus
        self.refused = refused or RefusedCredentials()
        """Shared by every runner, so a credential several sources use is told about once."""

    async def poll_once(self) -> PollOutcome:
        """Fetch, ingest and alert once; errors are recorded, not raised."""
        (outcome,) = await poll_together([self])
        return outcome

    async def fetch(self) -> Fetched | PollOutcome:
        """Fetch once; a failure is recorded and returned as the poll's outcome."""
        name = self.source.name
        status = await self.store.sources.status(name)
        try:
            return Fetched(status, await self.source.fetch(status.cursor))
        except SourceRateLimited as exc:
            return await self._failed(str(exc), exc.retry_after, rate_limited=True)
        except CredentialsRejected as exc:
            return await self._refused(exc)
        except SourceError as exc:
            return await self._failed(str(exc), None)
        except Exception as exc:
            log.exception("source %s crashed while fetching", name)
            return await self._failed(f"{name}: unexpected error ({type(exc).__name__})", None)

    async def finish(self, fetched: Fetched, batch: StoredBatch) -> PollOutcome:
        """Alert a stored batch and save the source's cursor."""
        name, result = self.source.name, fetched.result
        alerted = await self.alerter.alert(batch, first_poll=not fetched.status.first_poll_done)
        await self.store.sources.ok(
            name, result.cursor, len(result.items), rate_limit_remaining=self._budget_left()
        )
        self.refused.accepted(name)
        if fetched.status.consecutive_failures:
            self.bus.publish(Notice(f"Source {name} is working again."))
        log.info(
            "source %s: %d fetched, %d new, %d copies, %d known, %d unmatched",
            name,
            len(result.items),
            len(batch.new),
            len(batch.copies),
            batch.skipped_known,
            batch.unmatched,
        )
        return PollOutcome(len(result.items), len(batch.new), len(batch.copies), len(alerted))

    async def _refused(self, exc: CredentialsRejected) -> PollOutcome:
        """A refused credential: told once per credential, whichever sources share it."""
        if exc.credential is None:
            return await self._failed(str(exc), None, credentials=True)
        news = self.refused.refused(exc.credential, self.source.name)
        return await self._failed(str(exc), None, credentials=True, quiet=not news)

    async def _failed(
        self,
        message: str,
        retry_after: float | None,
        *,
        credentials: bool = False,
        rate_limited: bool = False,
        quiet: bool = False,
    ) -> PollOutcome:
        name = self.source.name
        failures = await self.store.sources.failed(
            name,
            message,
            credentials_rejected=credentials,
            rate_limit_remaining=self._budget_left(),
        )
        outcome = PollOutcome(error=message, retry_after=retry_after)
        if quiet:  # a credential another source (or an earlier poll) already reported
            log.debug("source %s failed (%d in a row): %s", name, failures, message)
            return outcome
        if rate_limited:  # handled: one line with the wait, never a traceback
            wait = self.delay_after(outcome, failures)
            log.warning("source %s: rate limited, retrying in %.0f s (%s)", name, wait, message)
        else:
            log.warning("source %s failed (%d in a row): %s", name, failures, message)
        if failures == 1:  # told once; `sources` and `parley status` show the rest
            self.bus.publish(
                Notice(
                    f"Source {name} cannot sign in: {message}. Renew the credential in .env and "
                    "restart Parley; until then it retries with backoff."
                    if credentials
                    else f"Source {name} failed: {message}. Retrying with backoff."
                )
            )
        return outcome

    def _budget_left(self) -> int | None:
        return self.source.rate_limit_remaining if isinstance(self.source, Budgeted) else None

    def delay_after(self, outcome: PollOutcome, failures: int) -> float:
        """Seconds until the next poll: the interval, or backoff after failures."""
        if outcome.error is None:
            return self.source.interval
        backoff = min(MAX_BACKOFF, self.source.interval * 2.0 ** min(failures, 12))
        return max(backoff, outcome.retry_after or 0.0)

    async def run(self, stop: asyncio.Event, *, skip_first: bool = False) -> None:
        """Poll until ``stop`` is set; ``skip_first`` waits one interval before polling."""
        delay = self.source.interval if skip_first else 0.0
        # The backoff goes on from the stored count, as the rate-limit log line computed it.
        failures = (await self.store.sources.status(self.source.name)).consecutive_failures
        while not stop.is_set():
            if delay:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            try:
                outcome = await self.poll_once()
            except Exception:
                # A failure in storing must not kill the loop: log it and back off.
                log.exception("source %s: pipeline iteration failed", self.source.name)
                outcome = PollOutcome(error="pipeline error")
            failures = failures + 1 if outcome.error else 0
            delay = self.delay_after(outcome, failures)


async def poll_together(runners: Sequence[SourceRunner]) -> list[PollOutcome]:
    """One poll of each runner: fetched at the same time, stored one after the other in the
    given order (mention ids do not depend on timing), triaged together (the polls share
    triage calls), then alerted in order. Errors in fetching are recorded, not raised."""
    fetched = await asyncio.gather(*(r.fetch() for r in runners))
    outcomes = [got if isinstance(got, PollOutcome) else None for got in fetched]
    stored = []
    for i, (runner, got) in enumerate(zip(runners, fetched, strict=True)):
        if isinstance(got, Fetched):
            stored.append((i, runner, got, await runner.ingestor.store_batch(got.result.items)))
    await asyncio.gather(*(runner.alerter.triage(batch) for _, runner, _, batch in stored))
    for i, runner, got, batch in stored:
        outcomes[i] = await runner.finish(got, batch)
    return [outcome for outcome in outcomes if outcome is not None]
