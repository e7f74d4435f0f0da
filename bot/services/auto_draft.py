"""Automatic drafts, written after the alert: an alert never waits for its drafts.

The alerter marks each alerted mention that deserves a draft as owing one (``drafting`` in the
store, which the alert shows as "drafting a reply…") and queues its alert at once. Drafting
starts when the alert is shown on its own: posted alone by a chat frontend's delivery service,
or opened with ``/mention ID`` or ``show ID``; with no chat frontend (the console alone) at
once. A mention folded into a digest is therefore drafted only when someone opens it. Drafts
are written by at most ``PARLEY_LLM_CONCURRENCY`` - 1 workers at a time (one LLM request slot
stays free for the background triage); when they are saved the
alert is edited in place (``MentionChanged(…, "drafted")``). When the guards refused every
draft, the alert says why instead.

Nothing is lost on a stop: workers are cancelled at once (a hung model does not hold the
shutdown), the mention still owes its draft in the store, and :meth:`AutoDrafts.recover`
drafts it at the next start (if its alert was posted on its own; a digest line waits to be
opened).

Noise is not drafted: a mention the triage found irrelevant, or spam, owes no draft (``draft
ID`` still writes some). A worker first waits for the mention's background LLM triage, if any
(``triaged``), so a mention the model finds to be noise costs no draft: its alert drops
"drafting a reply…".
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from bot.domain.models import SYSTEM, Mention
from bot.domain.states import MentionState
from bot.errors import InvalidTransition, NotFound
from bot.events import EventBus, MentionChanged
from bot.services.review import DraftsRefused, ReviewService
from bot.storage.store import Store

log = logging.getLogger(__name__)

DRAFTED = "drafted"
"""The action of the change that brings an alert its automatic drafts (or their refusal)."""


def deserves_draft(mention: Mention) -> bool:
    """Whether a mention is worth an automatic draft: not noise by the triage."""
    triage = mention.triage
    return not (triage and (not triage.relevant or mention.intent == "spam"))


def refusal_line(reasons: Sequence[str]) -> str:
    """The alert's line when the guards refused every draft."""
    return (
        f"No draft offered: every draft was held back ({'; '.join(reasons)}). "
        "Write your own reply, or ask for new drafts."
    )


class AutoDrafts:
    """Writes owed drafts in the background, a few at a time (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        review: ReviewService,
        bus: EventBus,
        *,
        concurrency: int = 4,
        enabled: bool = True,
        chat_frontends: Callable[[], bool] = lambda: False,
        triaged: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.review = review
        self.bus = bus
        self.concurrency = concurrency
        self.enabled = enabled
        self.chat_frontends = chat_frontends
        """Whether chat frontends deliver alerts (then drafting waits for an alert alone)."""
        self.triaged = triaged
        """Waits for a mention's background LLM triage (bot/triage/model.py), if any."""
        self._queue: deque[int] = deque()
        self._owed: set[int] = set()
        """Queued or being drafted (a mention is drafted once at a time)."""
        self._workers: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def busy(self) -> int:
        """Drafts queued or being written."""
        return len(self._owed)

    async def expect(self, mentions: Sequence[Mention]) -> list[Mention]:
        """Mark the mentions about to be alerted that deserve a draft as owing one; returns
        them as they are now."""
        if not self.enabled:
            return list(mentions)
        owed = {m.id for m in mentions if deserves_draft(m)}
        if owed:
            await self.store.mentions.set_drafting(sorted(owed), True)
        return [
            m.model_copy(update={"drafting": True, "draft_refused": None}) if m.id in owed else m
            for m in mentions
        ]

    def alerted(self, mentions: Sequence[Mention]) -> None:
        """Alerts were queued: with no chat frontend, the console shows them now: draft."""
        if not self.chat_frontends():
            for mention in mentions:
                if mention.drafting:
                    self.request(mention.id)

    async def shown(self, mention_id: int) -> None:
        """The mention's alert is shown on its own (posted alone, or opened): draft it now
        if it still owes a draft."""
        try:
            mention = await self.store.mentions.get(mention_id)
        except NotFound:
            return
        if mention.drafting and mention.state is MentionState.ALERTED:
            self.request(mention_id)

    async def recover(self) -> None:
        """At start: draft what a previous run owed, if its alert was posted on its own."""
        alone_only = self.chat_frontends()
        owed = [
            mid
            for mid, posted in await self.store.mentions.owed_drafts()
            if posted or not alone_only
        ]
        if owed:
            log.info("writing %d drafts a previous run left owed", len(owed))
        for mention_id in owed:
            self.request(mention_id)

    def request(self, mention_id: int) -> None:
        """Queue one mention for drafting (once; ignored after close)."""
        if self._closed or mention_id in self._owed:
            return
        self._owed.add(mention_id)
        self._queue.append(mention_id)
        self._idle.clear()
        while len(self._workers) < min(self.concurrency, len(self._owed)):
            task = asyncio.create_task(self._work(), name="auto-draft")
            self._workers.add(task)
            task.add_done_callback(self._worker_done)

    async def drain(self) -> None:
        """Wait until nothing is queued or being drafted."""
        await self._idle.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Recover owed drafts, then work until ``stop``; then cancel what is in flight (it
        stays owed in the store for the next start)."""
        await self.recover()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop drafting now: in-flight drafts are cancelled and stay owed in the store."""
        self._closed = True
        self._queue.clear()
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        while self._queue:
            mention_id = self._queue.popleft()
            try:
                await self._draft(mention_id)
            except Exception:
                log.exception("auto-draft of mention #%d failed", mention_id)
            finally:
                self._owed.discard(mention_id)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        if not self._workers:
            self._idle.set()

    async def _draft(self, mention_id: int) -> None:
        if self.triaged is not None:
            await self.triaged(mention_id)
        mention = await self.store.mentions.get(mention_id)
        if not mention.drafting or mention.state is not MentionState.ALERTED:
            return  # drafted by hand or decided meanwhile
        if not deserves_draft(mention):
            await self._give_up(mention_id)  # the model found it to be noise
            await self._announce(mention_id)
            return
        try:
            if not await self.review.draft(mention_id, SYSTEM, notify=False, owed_only=True):
                return  # drafted or edited by a person meanwhile: theirs stands
        except DraftsRefused as refused:
            log.warning(
                "every draft for #%d was refused: %s", mention_id, "; ".join(refused.reasons)
            )
            await self.store.mentions.set_draft_refused(mention_id, refusal_line(refused.reasons))
        except (InvalidTransition, NotFound):
            await self._give_up(mention_id)  # decided (or gone) meanwhile: no draft needed
            return
        except Exception:
            # The alert is out already; the CM can ask for drafts ("New drafts", `draft ID`).
            log.exception("auto-draft of mention #%d failed", mention_id)
            await self._give_up(mention_id)
        await self._announce(mention_id)

    async def _give_up(self, mention_id: int) -> None:
        await self.store.mentions.set_drafting([mention_id], False)

    async def _announce(self, mention_id: int) -> None:
        mention = await self.store.mentions.get(mention_id)
        drafts = await self.store.drafts.current(mention_id)
        reply = await self.store.replies.for_mention(mention_id)
        self.bus.publish(MentionChanged(mention, drafts, reply, SYSTEM, DRAFTED))
