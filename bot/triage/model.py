"""Triage of new mentions: relevance, sentiment, intent, urgency and whether to reply.

Alerts never wait for the model: new mentions are first triaged by the rules
(:class:`~bot.triage.rules.RuleTriager`, no I/O), stored, and their alerts go out at once, urgent
first. With an LLM, the same mentions are then triaged in the background in batches (one call per
brand and up to ``PARLEY_LLM_TRIAGE_BATCH`` mentions), each mention fenced as untrusted data;
polls that ask within ``PARLEY_TRIAGE_WINDOW_SECONDS`` of each other share calls
(bot/triage/batching.py). The model's verdicts replace the rules' in the store, and an alert whose
urgent flag, relevance or intent changed is edited in place (``MentionChanged(…, "triaged")``);
the urgent flag is only ever raised. Automatic drafts wait for a mention's background triage
(:meth:`Triager.settled`) so noise costs no draft; at a stop, pending background triage is
dropped (the rules' verdict stays).
Without a model, when the call fails, while the LLM client's circuit breaker is open (no call is
tried, bot/llm/breaker.py) or when the daily budget is spent, the rules' verdict is the one kept;
bot/triage/rules.py lists the rules and the routing rule (:func:`~bot.triage.rules.is_urgent`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bot.config import ParleyConfig
from bot.domain.models import SYSTEM, TRIAGE_INTENTS, Mention, Triage
from bot.domain.states import MentionState
from bot.drafting.offline import safe_author
from bot.errors import LLMError
from bot.events import EventBus, MentionChanged
from bot.llm.client import ChatMessage, JsonTask, LlmClient
from bot.llm.prompts import PromptLibrary, fence, new_fence_key
from bot.storage.mentions import NewMention
from bot.storage.store import Store
from bot.triage.batching import Coalescer
from bot.triage.rules import RuleTriager, TriageResult, is_urgent

log = logging.getLogger(__name__)

TRIAGED = "triaged"
"""The action of the change that brings an alert the model's triage."""

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "relevant": {"type": "boolean"},
                    "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                    "intent": {"type": "string", "enum": list(TRIAGE_INTENTS)},
                    "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
                    "needs_reply": {"type": "boolean"},
                    "reason": {"type": "string"},
                },
                "required": [
                    "id",
                    "relevant",
                    "sentiment",
                    "intent",
                    "urgency",
                    "needs_reply",
                    "reason",
                ],
                "additionalProperties": False,
            },
        }
    },
    "required": ["items"],
    "additionalProperties": False,
}

_INTENT_ALIASES = {
    "crisis/legal": "crisis_legal",
    "crisis": "crisis_legal",
    "legal": "crisis_legal",
}


def parse_triage(data: Any, ids: Sequence[int], model: str) -> dict[int, TriageResult]:
    """Valid items of a triage answer by mention id; ValueError when none is usable."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError('expected {"items": [ ... ]}')
    wanted = set(ids)
    results: dict[int, TriageResult] = {}
    problems = []
    for item in data["items"]:
        try:
            mention_id = int(item["id"])
            intent = str(item["intent"]).strip().lower().replace(" ", "_")
            intent = _INTENT_ALIASES.get(intent, intent)
            if mention_id not in wanted or intent not in TRIAGE_INTENTS:
                raise ValueError(f"unknown id or intent in {item!r}"[:200])
            triage = Triage(
                relevant=bool(item["relevant"]),
                sentiment=str(item["sentiment"]).lower(),
                urgency=str(item["urgency"]).lower(),
                needs_reply=bool(item["needs_reply"]),
                reason=" ".join(str(item.get("reason", "")).split())[:200],
                by=model,
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(str(exc)[:200])
            continue
        results[mention_id] = TriageResult(intent, triage)
    if not results:
        raise ValueError(f"no usable item ({'; '.join(problems[:3]) or 'items was empty'})")
    return results


def _visible(result: TriageResult, urgent: bool) -> tuple[bool, bool, str]:
    """What an alert shows of a triage: the urgent flag, relevance and intent."""
    return urgent, result.triage.relevant, result.intent


class Triager:
    """Triages new mentions by the rules at once, then by the LLM in the background when one
    is configured and available, and stores the results (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        config: ParleyConfig,
        *,
        bus: EventBus | None = None,
        client: LlmClient | None = None,
        library: PromptLibrary | None = None,
        batch_size: int = 20,
        window: float = 1.0,
        urgent_reach: int = 10_000,
    ) -> None:
        self.store = store
        self.config = config
        self.bus = bus
        """Where an alert's edit is announced when the model changed what it shows."""
        self.client = client
        self.library = library
        self.urgent_reach = urgent_reach
        self.rules = RuleTriager()
        self.batches: Coalescer[Mention, TriageResult] = Coalescer(
            self._llm,
            group=lambda m: m.brand,
            ident=lambda m: m.id,
            size=batch_size,
            window=window,
        )
        """Shares LLM calls between polls that ask within ``window`` seconds of each other."""
        self._pending: dict[int, asyncio.Event] = {}
        """Mentions whose background LLM triage is queued or running."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def llm_ready(self) -> bool:
        """Whether an LLM is configured and its circuit breaker lets calls through."""
        return self.client is not None and self.library is not None and self.client.available

    @property
    def busy(self) -> int:
        """Mentions waiting for their background LLM triage."""
        return len(self._pending)

    async def triage_new(self, batch: list[NewMention]) -> None:
        """The Alerter hook: triage a poll's fresh mentions by the rules and raise their urgent
        flag now (their alerts do not wait for the model); the LLM's triage follows in the
        background and edits the alerts it changes."""
        mentions = [await self.store.mentions.get(n.id) for n in batch]
        results = {m.id: self.rules.triage(m) for m in mentions}
        urgent = await self._save(mentions, results)
        for new in batch:
            new.urgent = new.urgent or new.id in urgent
        if self.llm_ready and not self._closed and mentions:
            self._background(mentions, results, urgent)

    async def triage(self, mention_ids: Sequence[int]) -> set[int]:
        """Triage and store, waiting for the LLM when it is available (rules otherwise);
        returns the ids the routing rule made urgent."""
        mentions = [await self.store.mentions.get(i) for i in mention_ids]
        results: dict[int, TriageResult] = {}
        if self.llm_ready:
            results = await self.batches.submit(mentions)
        for mention in mentions:
            if mention.id not in results:
                results[mention.id] = self.rules.triage(mention)
        return await self._save(mentions, results)

    async def settled(self, mention_id: int) -> None:
        """Wait until the mention's background LLM triage (if any) is stored or dropped."""
        pending = self._pending.get(mention_id)
        if pending is not None:
            await pending.wait()

    async def drain(self) -> None:
        """Wait until no background LLM triage is queued or running."""
        await self._idle.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Triage in the background until ``stop``; then drop what is pending."""
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Drop pending background triage now (the rules' verdicts stay stored)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.batches.close()  # calls no caller waits for any more

    async def _save(self, mentions: list[Mention], results: dict[int, TriageResult]) -> set[int]:
        """Store the results; returns the ids the routing rule made urgent."""
        urgent = {m.id for m in mentions if is_urgent(m, results[m.id], self.urgent_reach)}
        await self.store.mentions.save_triage(
            [(m.id, results[m.id].intent, results[m.id].triage, m.id in urgent) for m in mentions]
        )
        return urgent

    def _background(
        self, mentions: list[Mention], rules: dict[int, TriageResult], urgent: set[int]
    ) -> None:
        done = asyncio.Event()
        for mention in mentions:
            self._pending[mention.id] = done
        self._idle.clear()
        task = asyncio.create_task(self._refine(mentions, rules, urgent), name="llm-triage")
        self._tasks.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            for mention in mentions:
                if self._pending.get(mention.id) is done:
                    del self._pending[mention.id]
            done.set()
            if not self._tasks:
                self._idle.set()

        task.add_done_callback(finished)

    async def _refine(
        self, mentions: list[Mention], rules: dict[int, TriageResult], urgent: set[int]
    ) -> None:
        """The LLM's triage of mentions the rules triaged: stored, and the alerts whose
        visible verdict changed are edited."""
        try:
            results = await self.batches.submit(mentions)
        except Exception:
            log.exception("background LLM triage of %d mentions failed", len(mentions))
            return
        triaged = [m for m in mentions if m.id in results]
        if not triaged:
            return
        now_urgent = await self._save(triaged, results) | (urgent & {m.id for m in triaged})
        changed = [
            m.id
            for m in triaged
            if _visible(results[m.id], m.id in now_urgent) != _visible(rules[m.id], m.id in urgent)
        ]
        for mention_id in changed:
            await self._announce(mention_id)

    async def _announce(self, mention_id: int) -> None:
        if self.bus is None:
            return
        mention = await self.store.mentions.get(mention_id)
        if mention.state in (MentionState.NEW, MentionState.BACKLOG):
            return  # no alert to edit (held by a pause, or stored quietly)
        drafts = await self.store.drafts.current(mention_id)
        reply = await self.store.replies.for_mention(mention_id)
        self.bus.publish(MentionChanged(mention, drafts, reply, SYSTEM, TRIAGED))

    async def _llm(self, mentions: list[Mention]) -> dict[int, TriageResult]:
        assert self.client is not None and self.library is not None
        brand = self.config.brand(mentions[0].brand)
        if brand is None:
            return {}
        key = new_fence_key()
        blocks = []
        for m in mentions:
            reach = "unknown" if m.author.reach is None else str(m.author.reach)
            body = f"author: {safe_author(m.author) or 'unknown'}\n"
            body += f"title: {m.title}\n" if m.title else ""
            body += f"text: {m.text}"
            if m.thread_context:
                body += f"\nthread: {m.thread_context}"
            label = f"mention id={m.id} platform={m.platform} reach={reach}"
            blocks.append(fence(key, label, body))
        user = (
            f"Fence key for this request: {key}\n"
            f"Triage these {len(mentions)} mentions; one item per id.\n\n" + "\n\n".join(blocks)
        )
        messages: list[ChatMessage] = [
            {"role": "system", "content": self.library.system_message("triage", brand)},
            {"role": "user", "content": user},
        ]
        model = self.client.triage_model
        ids = [m.id for m in mentions]
        try:
            results, _ = await self.client.complete_json(
                messages,
                model=model,
                schema_name="parley_triage",
                schema=TRIAGE_SCHEMA,
                parse=lambda data: parse_triage(data, ids, model),
                task=JsonTask("triage", brand.name, None, len(mentions)),
                max_tokens=200 + 90 * len(mentions),
            )
        except LLMError as exc:
            log.warning("LLM triage failed for %d mentions (%s); using the rules", len(ids), exc)
            return {}
        return results
