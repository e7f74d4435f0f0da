"""The mention pipeline after fetching: normalise → match → dedupe → store → alert.

Items are processed in batches: one transaction stores a whole poll. Deduplication has three
layers: the same (source, external id) is skipped; the same canonical URL from any source, or a
near-identical text (copy, repost), is recorded as a copy of the earlier mention, whose alert
then counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.domain.models import SYSTEM, Mention, RawMention, utcnow
from bot.domain.states import MentionState
from bot.errors import InvalidTransition
from bot.events import EventBus, MentionAlert, MentionChanged
from bot.matching.intent import classify_intent
from bot.matching.matcher import Matcher
from bot.matching.normalize import tokenize
from bot.pipeline.canonical import canonical_url
from bot.pipeline.fingerprint import NearDupIndex, text_fingerprint
from bot.storage.mentions import Copy, NewMention
from bot.storage.store import Store

log = logging.getLogger(__name__)


class DraftScheduler(Protocol):
    """Writes drafts after the alerts (bot/services/auto_draft.py)."""

    async def expect(self, mentions: Sequence[Mention]) -> list[Mention]:
        """Mark the mentions about to be alerted that deserve a draft as owing one; returns
        them as they are now."""

    def alerted(self, mentions: Sequence[Mention]) -> None:
        """Their alerts were queued."""


TriageHook = Callable[[list[NewMention]], Awaitable[None]]
Enqueue = Callable[[Sequence[Mention]], Awaitable[None]]
"""Queues alerts in the store for the chat frontends' delivery services."""

NEAR_DUP_WINDOW = timedelta(days=7)
"""How far back near-identical texts are looked for (kept in memory)."""

NEAR_DUP_MAX = 250_000
"""Past this many entries the in-memory index is rebuilt from the window (~300 bytes each)."""


@dataclass
class StoredBatch:
    """What one batch produced."""

    new: list[NewMention] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    skipped_known: int = 0
    unmatched: int = 0
    triaged: bool = False
    """Set by Alerter.triage, so alert() does not triage the batch again."""


class Ingestor:
    """Turns raw items into stored, deduplicated mentions and alerts."""

    def __init__(self, store: Store, matcher: Matcher) -> None:
        self.store = store
        self.matcher = matcher
        self.near_dups = NearDupIndex()

    async def load(self) -> None:
        """(Re)build the near-duplicate index from the mentions of the window."""
        self.near_dups = NearDupIndex()
        for mention_id, fingerprint in await self.store.mentions.recent_fingerprints(
            utcnow() - NEAR_DUP_WINDOW
        ):
            self.near_dups.add(fingerprint, mention_id)

    async def store_batch(self, items: Sequence[RawMention]) -> StoredBatch:
        """Match, deduplicate and store one batch (one transaction).

        Items are taken oldest first, so the original of a repost becomes the mention and the
        repost its copy, whatever order the feed listed them in."""
        batch = StoredBatch()
        items = sorted(items, key=_age_key)
        known = await self.store.mentions.known_keys([(i.source, i.external_id) for i in items])
        seen_keys: set[tuple[str, str]] = set()
        candidates: list[tuple[RawMention, str | None, NewMention]] = []
        matcher = self.matcher  # WatchService may swap it at any time; a batch uses one
        for raw in items:
            key = (raw.source, raw.external_id)
            if key in known or key in seen_keys:
                batch.skipped_known += 1
                continue
            seen_keys.add(key)
            body = f"{raw.title}\n{raw.text}" if raw.title else raw.text
            tokens = tokenize(body)
            rules = matcher.match_tokens(
                tokens, language=raw.language, source=raw.source, platform=raw.platform
            )
            if not rules:
                batch.unmatched += 1
                continue
            rule = rules[0]
            url = canonical_url(raw.url)
            candidates.append(
                (
                    raw,
                    url,
                    NewMention(
                        raw=raw,
                        brand=rule.brand,
                        rule=rule.rule,
                        urgent=any(r.urgent and r.brand == rule.brand for r in rules),
                        canonical_url=url,
                        fingerprint=text_fingerprint(body),
                    ),
                )
            )
        by_url = await self.store.mentions.ids_by_canonical_url([u for _, u, _ in candidates if u])
        # Within the batch, ids are not assigned yet: -k stands for the k-th new mention.
        batch_urls: dict[str, int] = {}
        batch_dups = NearDupIndex()
        for raw, url, new in candidates:
            original = by_url.get(url) if url else None
            if original is None and url:
                original = batch_urls.get(url)
            reason = "same link"
            if original is None:
                original = self.near_dups.find(new.fingerprint)
                if original is None:
                    original = batch_dups.find(new.fingerprint)
                reason = "near-identical text"
            if original is not None:
                batch.copies.append(Copy(raw.source, raw.external_id, original, raw.url, reason))
                continue
            new.intent = classify_intent(raw.text)
            batch.new.append(new)
            if url:
                batch_urls[url] = -len(batch.new)
            batch_dups.add(new.fingerprint, -len(batch.new))
        await self.store.mentions.insert_batch(batch.new, batch.copies)
        for new in batch.new:
            self.near_dups.add(new.fingerprint, new.id)
        if len(self.near_dups) > NEAR_DUP_MAX:
            await self.load()
        return batch


def _age_key(item: RawMention) -> tuple[bool, datetime]:
    return (item.created_at is None, item.created_at or datetime.min.replace(tzinfo=UTC))


class Alerter:
    """Decides which stored mentions to show the team, and shows them: each alert is queued in
    the store for the chat frontends (``enqueue``) and announced on the bus."""

    def __init__(
        self, store: Store, bus: EventBus, enqueue: Enqueue, *, lookback: timedelta
    ) -> None:
        self.store = store
        self.bus = bus
        self.enqueue = enqueue
        self.lookback = lookback
        self.drafts: DraftScheduler | None = None
        """Drafts alerted mentions in the background (auto-draft); alerts never wait."""
        self.triage_hook: TriageHook | None = None
        """Triages a poll's fresh mentions by the rules before they are alerted (no model
        call: the LLM's triage follows in the background); may set urgent."""
        self.paused = False
        """Set by AlertControl: fresh mentions stay ``new`` (held) until alert_stored."""

    async def alert(
        self, batch: StoredBatch, *, first_poll: bool, now: datetime | None = None
    ) -> list[Mention]:
        """Alert new mentions (urgent first); a first poll keeps old items quiet. While
        ``paused``, fresh mentions are held: they stay ``new`` until alert_stored."""
        await self.triage(batch)
        cutoff = (now or utcnow()) - self.lookback
        fresh: list[NewMention] = []
        quiet: list[int] = []
        for new in batch.new:
            created = new.raw.created_at
            if first_poll and created is not None and created < cutoff:
                quiet.append(new.id)
            else:
                fresh.append(new)
        if quiet:
            await self.store.mentions.mark_many(quiet, MentionState.BACKLOG, SYSTEM, "backlog")
            log.info("stored %d older mentions quietly (first poll of a source)", len(quiet))
        fresh.sort(key=lambda n: (not n.urgent, n.id))
        alerted = [] if self.paused else await self.alert_stored([n.id for n in fresh])
        new_ids = {n.id for n in batch.new}
        for mention_id in sorted({c.mention_id for c in batch.copies} - new_ids):
            mention = await self.store.mentions.get(mention_id)
            if mention.state is MentionState.NEW:
                continue  # held by a pause: its alert will count the copies
            drafts = await self.store.drafts.current(mention_id)
            reply = await self.store.replies.for_mention(mention_id)
            self.bus.publish(MentionChanged(mention, drafts, reply, SYSTEM, "duplicate"))
        return alerted

    async def triage(self, batch: StoredBatch) -> None:
        """Triage the batch's new mentions once (alert() does it unless done already)."""
        if batch.triaged:
            return
        batch.triaged = True
        if self.triage_hook is not None and batch.new:
            # Quiet (backlog) mentions too: a crisis among them should be labelled.
            try:
                await self.triage_hook(batch.new)
            except Exception:
                log.exception("triage of %d mentions failed; alerting untriaged", len(batch.new))

    async def alert_stored(self, mention_ids: Sequence[int]) -> list[Mention]:
        """Alert stored mentions that are still ``new``, in the order given (urgent first is
        the caller's order). Marking is per mention and conditional, so a mention two paths
        race for (a resume and a poll) is alerted once; one no longer new is skipped. Alerts
        are queued at once, before any draft: drafts follow and edit them."""
        claimed = await self._claim(mention_ids)
        if not claimed:
            return []
        alerted = [await self.store.mentions.get(i) for i in claimed]
        if self.drafts is not None:
            alerted = await self.drafts.expect(alerted)
        await self.enqueue(alerted)
        for mention in alerted:
            self.bus.publish(MentionAlert(mention, []))
        if self.drafts is not None:
            self.drafts.alerted(alerted)
        return alerted

    async def _claim(self, mention_ids: Sequence[int]) -> list[int]:
        try:
            await self.store.mentions.mark_many(mention_ids, MentionState.ALERTED, SYSTEM, "alert")
            return list(mention_ids)
        except InvalidTransition:
            pass  # one of them was alerted or decided meanwhile: claim them one by one
        claimed = []
        for mention_id in mention_ids:
            try:
                await self.store.mentions.transition(
                    mention_id, MentionState.ALERTED, SYSTEM, "alert", expect=[MentionState.NEW]
                )
            except InvalidTransition:
                continue
            claimed.append(mention_id)
        return claimed
