"""Composition root: builds the core services once and runs them with the frontends.

Everything is started here and shut down in reverse order; SIGINT/SIGTERM set ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from bot.changes import Changes
from bot.config import ParleyConfig
from bot.connectors.catalog import BY_HAND, RELAYS, build_source
from bot.connectors.log import LogPublisher
from bot.connectors.registry import MANUAL, Publishers
from bot.connectors.spec import Built
from bot.domain.models import Actor
from bot.drafting.base import Drafter
from bot.drafting.offline import OfflineDrafter
from bot.errors import ConfigError, PermissionDenied
from bot.events import EventBus, MentionSignal
from bot.localtime import set_zone
from bot.matching.matcher import Matcher, RuleSpec
from bot.pipeline.credentials import RefusedCredentials
from bot.pipeline.ingest import Alerter, Ingestor
from bot.pipeline.runner import SourceRunner, poll_together
from bot.services.alert_control import AlertControl
from bot.services.alert_delivery import AlertDeliveries
from bot.services.auto_draft import AutoDrafts
from bot.services.llm_setup import LlmServices, build_llm
from bot.services.outbox import Outbox
from bot.services.permissions import ApproverPolicy, brand_approvers
from bot.services.review import ReviewService
from bot.services.review_commands import ReviewCommands
from bot.services.tenancy import Tenancy
from bot.services.watch import WatchService
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.instance_lock import hold_instance_lock
from bot.storage.store import Store

log = logging.getLogger(__name__)


class Frontend(Protocol):
    """A chat frontend: it runs until ``stop`` is set."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None: ...


def rule_specs(config: ParleyConfig) -> list[RuleSpec]:
    """Every brand's rules, in config order (urgent rules keep their place)."""
    return [
        RuleSpec(brand=b.name, rule=r.name, query=r.query, urgent=r.urgent)
        for b in config.brands
        for r in b.rules
    ]


@dataclass
class Core:
    """The running core services, shared by every frontend."""

    settings: Settings
    config: ParleyConfig
    store: Store
    bus: EventBus
    drafter: Drafter
    review: ReviewService
    outbox: Outbox
    ingestor: Ingestor
    alerter: Alerter
    watch: WatchService
    alerts: AlertControl
    deliveries: AlertDeliveries
    """Every chat frontend's alert delivery; the alerter queues alerts for each."""
    tenancy: Tenancy
    """Which brands each chat may see (bot/services/tenancy.py)."""
    auto_drafts: AutoDrafts
    """Writes drafts after the alerts; ``shown`` when a frontend opens a mention."""
    llm: LlmServices
    """Triage, draft checks and, when configured, the LLM client and prompt files."""
    runners: list[SourceRunner]
    commands: ReviewCommands
    """The review command table every frontend maps its buttons and commands onto."""

    def brand_label(self, name: str) -> str:
        """A brand's display name (its id if it left the config)."""
        brand = self.config.brand(name)
        return brand.label if brand else name

    async def reload_prompts(self, actor: Actor) -> None:
        """Re-read the saved-reply templates and LLM prompt files (approvers only, audited).
        A bad file raises ConfigError naming it, and the previous files stay in use."""
        if not self.review.policy.is_approver(actor):
            raise PermissionDenied("only approvers can reload the prompts")
        self.llm.reload_prompts()
        await self.store.audit.note(actor, "prompts", 0, "reload")

    async def poll_all_once(self) -> None:
        """One poll of every source, together (used by the demo at start): the polls share
        triage calls, and mentions are stored and alerted in source order."""
        await poll_together(self.runners)

    async def settle(self, limit: float = 30.0) -> None:
        """Wait (at most ``limit`` seconds) until the outbox has nothing due or in flight, the
        model's background triage was stored, every review command a chat started has run,
        every event was delivered, the running chat frontends posted every queued alert and
        every automatic draft owed to a shown alert was written (and its alert edited).

        Each service says when it is idle and has an event to wait on for it; this waits on
        each in turn until all are idle at one moment (checked with no await in between, so
        work one of them hands another is never missed). Nothing is polled."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                self.outbox.wake()  # one pass sends whatever is due now
                while not await self._idle():
                    await self.outbox.wait_idle()
                    await self.llm.triager.drain()  # the model's triage is stored…
                    await self.bus.drain()  # changes reach the frontends' delivery…
                    await self.deliveries.drain()  # …queued alerts are posted…
                    await self.commands.in_flight.drain()  # a chat's command has run…
                    await self.auto_drafts.drain()  # …drafts are written…
                    await self.bus.drain()  # …and changes meanwhile edit the alerts

    async def _idle(self) -> bool:
        """Whether every service is idle now (the outbox first: it may read the store)."""
        if not await self.outbox.idle():
            return False
        return (
            self.llm.triager.busy == 0
            and self.commands.in_flight.idle
            and self.bus.idle
            and self.deliveries.idle
            and self.auto_drafts.idle
        )


def approver_policy(settings: Settings, config: ParleyConfig | None = None) -> ApproverPolicy:
    """Approvers per platform, from the settings, and each brand's own from parley.toml.

    Telegram's ``admins`` grants the ``admin`` role, which the Telegram frontend gives only to
    users it found among the alert chat's administrators. Discord approvers are members holding
    one of ``DISCORD_APPROVER_ROLE_IDS`` (the frontend passes a member's role ids as roles).
    """
    telegram_ids, telegram_admins = settings.telegram_approvers()
    roles = {"discord": settings.discord_approver_roles()}
    if telegram_admins:
        roles["telegram"] = frozenset({"admin"})
    return ApproverPolicy(
        users={"telegram": telegram_ids},
        roles=roles,
        console_is_approver=settings.parley_console_approver,
        brands=brand_approvers(config.brands if config is not None else ()),
    )


@asynccontextmanager
async def build_core(
    settings: Settings,
    config: ParleyConfig,
    *,
    base_dir: Path | None = None,
    lookback: timedelta | None = None,
) -> AsyncIterator[Core]:
    """Open the store and wire every core service; closes everything on exit.

    Relative source paths resolve against ``base_dir`` (default: the config file's folder).
    The database's instance lock is taken first (DatabaseInUse if another Parley holds it), so
    this core is its only writer and its outbox may settle what a previous run left sending.
    """
    base_dir = base_dir or settings.parley_config.resolve().parent
    set_zone(settings.display_zone())
    async with AsyncExitStack() as stack:
        stack.enter_context(hold_instance_lock(settings.parley_db_path))
        db = await stack.enter_async_context(Database.open(settings.parley_db_path))
        store = Store(db)
        changes = Changes(store, EventBus())  # every MentionChanged is published through it
        llm = await _start_llm(stack, settings, config, changes)
        built = []
        for source_config in config.sources:
            one = build_source(source_config, base_dir=base_dir)
            stack.push_async_callback(one.source.aclose)  # closed after the outbox stops
            built.append(one)
        lookback = lookback or timedelta(hours=settings.parley_lookback_hours)
        yield await _wire(stack, settings, config, changes, llm, built, lookback)


async def _start_llm(
    stack: AsyncExitStack, settings: Settings, config: ParleyConfig, changes: Changes
) -> LlmServices:
    """Drafting, triage and draft checks (by the model when one is configured), closed on
    exit: pending LLM triage is dropped (the rules' verdicts stay stored)."""
    store = changes.store
    llm = build_llm(settings, config, store, changes, OfflineDrafter(settings.prompts_dir()))
    await llm.start(store)
    if llm.client is not None:
        stack.push_async_callback(llm.client.aclose)
    stack.push_async_callback(llm.triager.close)
    return llm


async def _wire(
    stack: AsyncExitStack,
    settings: Settings,
    config: ParleyConfig,
    changes: Changes,
    llm: LlmServices,
    built: Sequence[Built],
    lookback: timedelta,
) -> Core:
    """Build the services, each given what it uses, and restore their saved state."""
    store, bus = changes.store, changes.bus
    publishers = _publishers(settings, config, built)
    outbox = Outbox(store, publishers, changes, max_attempts=settings.parley_outbox_max_attempts)
    review = ReviewService(
        store,
        config,
        llm.drafter,
        approver_policy(settings, config),
        publishers,
        changes,
        variants=settings.parley_draft_variants,
        default_limit=settings.parley_reply_limit,
        guard=llm.guard,
        on_queued=outbox.wake,
    )
    ingestor = Ingestor(store, Matcher(rule_specs(config)))
    await ingestor.load()
    deliveries, auto_drafts, alerter = _alerting(settings, changes, llm, review, lookback)
    stack.push_async_callback(auto_drafts.close)  # owed drafts stay owed in the store
    # Chat-added rules and the alert pause are restored before any source polls.
    watch = WatchService(store, config, ingestor, review.policy)
    await watch.load()
    alerts = AlertControl(store, alerter, review.policy)
    await alerts.load()
    refused = RefusedCredentials()  # one message per refused token, however many sources
    runners = [
        SourceRunner(one.source, store, ingestor, alerter, bus, refused=refused) for one in built
    ]
    alert_places = {
        "telegram": settings.telegram_alert_chat(),
        "discord": settings.discord_alert_channel_id,
    }
    tenancy = Tenancy(config, review.policy, store, alert_places)
    return Core(
        settings,
        config,
        store,
        bus,
        llm.drafter,
        review,
        outbox,
        ingestor,
        alerter,
        watch,
        alerts,
        deliveries,
        tenancy,
        auto_drafts,
        llm,
        runners,
        ReviewCommands(review),
    )


def _alerting(
    settings: Settings,
    changes: Changes,
    llm: LlmServices,
    review: ReviewService,
    lookback: timedelta,
) -> tuple[AlertDeliveries, AutoDrafts, Alerter]:
    """The alerter, the chat frontends' deliveries it queues alerts for, and the automatic
    drafts that follow an alert shown on its own (told by the ``shown`` signal)."""
    store = changes.store
    shown = MentionSignal()  # a chat frontend posted an alert on its own: draft it now
    deliveries = AlertDeliveries(store, shown)
    auto_drafts = AutoDrafts(
        store,
        review,
        changes,
        # One LLM slot stays free for the background triage.
        concurrency=max(1, settings.parley_llm_concurrency - 1),
        enabled=settings.parley_auto_draft,
        chat_frontends=deliveries.any,
        triaged=llm.triager.settled,  # noise costs no draft
        shown=shown,
    )
    alerter = Alerter(
        store,
        changes.bus,
        changes,
        deliveries.enqueue,
        lookback=lookback,
        drafts=auto_drafts,
        triage=llm.triager.triage_new,
    )
    return deliveries, auto_drafts, alerter


def _publishers(settings: Settings, config: ParleyConfig, built: Sequence[Built]) -> Publishers:
    """Every source's publisher; platforms answered only by hand go to the manual one; a
    relaying source's (the inbound webhook's) mentions naming a platform go to that platform's
    connector when there is exactly one (else to the default publisher)."""
    posting = [
        (c.type, b.source.name, b.publisher)
        for c, b in zip(config.sources, built, strict=True)
        if b.publisher is not None
    ]
    by_type: dict[str, list[str]] = {}
    for kind, _, publisher in posting:
        by_type.setdefault(kind, []).append(publisher.name)
    single = {kind: names[0] for kind, names in by_type.items() if len(names) == 1}
    return Publishers(  # the manual publisher is always there
        {"log": LogPublisher(), **{p.name: p for _, _, p in posting}},
        default=settings.parley_default_publisher,
        by_platform=dict.fromkeys(BY_HAND, MANUAL),
        by_source={source: p.name for _, source, p in posting},
        relays={c.name: single for c in config.sources if c.type in RELAYS},
    )


SHUTDOWN_BUDGET = 4.0
"""Seconds after the stop request by which every task has finished or is cancelled: a chat or a
model that does not answer must not hold the process (pending alerts and edits are stored)."""


async def run_core(
    core: Core,
    frontends: Sequence[Frontend],
    stop: asyncio.Event,
    *,
    polled_once: bool = False,
) -> None:
    """Run sources, the outbox, event delivery and the frontends until ``stop`` is set.

    A frontend whose platform refuses its token (ConfigError) stops everything; the error is
    raised once all has stopped."""
    refused: list[ConfigError] = []
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(core.bus.run(stop), name="events"),
            tg.create_task(core.outbox.run(stop), name="outbox"),
            tg.create_task(core.auto_drafts.run(stop), name="auto-draft"),
        ]
        tasks.append(tg.create_task(core.llm.triager.run(stop), name="triage"))
        for runner in core.runners:
            run = runner.run(stop, skip_first=polled_once)
            tasks.append(tg.create_task(run, name=f"source {runner.source.name}"))
        for frontend in frontends:
            supervised = _supervised(frontend.name, frontend.run, stop, refused)
            tasks.append(tg.create_task(supervised, name=f"frontend {frontend.name}"))
        watchdog = tg.create_task(_cancel_late(stop, tasks))
        await asyncio.wait(tasks)
        watchdog.cancel()
    if refused:
        raise refused[0]


async def _cancel_late(stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel what still runs ``SHUTDOWN_BUDGET`` seconds after ``stop`` (an LLM call, a chat
    request that hangs)."""
    await stop.wait()
    log.info("stopping: finishing work in progress (at most %.1f s)", SHUTDOWN_BUDGET)
    _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_BUDGET)
    if late:
        names = ", ".join(sorted(task.get_name() for task in late))
        log.warning("stopping: still busy after %.1f s, cancelled: %s", SHUTDOWN_BUDGET, names)
        for task in late:
            task.cancel()


async def _supervised(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    refused: list[ConfigError],
) -> None:
    """A frontend that crashes is logged and stops the process cleanly instead of hanging; one
    whose token is refused stops it too, and the refusal is kept for the exit status."""
    try:
        await run(stop)
    except ConfigError as exc:
        refused.append(exc)
        stop.set()
    except Exception:
        log.exception("frontend %s crashed; shutting down", name)
        stop.set()
