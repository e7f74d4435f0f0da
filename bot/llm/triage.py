"""Triage of new mentions: relevance, sentiment, intent, urgency and whether to reply.

With an LLM, mentions are triaged in batches (one call per brand and up to
``PARLEY_LLM_TRIAGE_BATCH`` mentions), each mention fenced as untrusted data; polls that ask
within ``PARLEY_TRIAGE_WINDOW_SECONDS`` of each other share calls (bot/llm/batching.py).
Without one, when the call fails, while the LLM client's circuit breaker is open (no call is
tried, bot/llm/breaker.py) or when the daily budget is spent, :class:`RuleTriager` fills the
same fields with plain keyword rules (listed below, so a CM can predict them):

- intent: ``crisis_legal`` (lawyer, lawsuit, data breach, GDPR… in en/fr/es/de) beats ``spam``
  (crypto, giveaway, "click here"…) beats ``bug_report`` (bug, crash, error message…) beats the
  rule-based intent of bot/drafting/intent.py (complaint, question, praise), after which a
  question or other mention about prices, plans or demos is a ``sales_lead`` and another
  ``other`` one citing an article or interview is ``press``;
- sentiment: complaint, bug report and crisis/legal are negative, praise positive, else
  neutral;
- urgency: crisis/legal high; spam, press and other low; the rest normal;
- a reply is needed for questions, complaints, bug reports, sales leads, crisis/legal and
  praise; relevance cannot be judged by rules (always relevant, unless spam).

Routing rule (:func:`is_urgent`): a mention becomes urgent when its watch rule says so, when
triage says urgency high or crisis/legal, or when it is negative and its author's reach is at
least ``PARLEY_URGENT_REACH`` (0 turns that part off).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

from bot.config import ParleyConfig
from bot.domain.models import TRIAGE_INTENTS, Mention, Triage
from bot.drafting.intent import classify_intent
from bot.drafting.offline import safe_author
from bot.errors import LLMError
from bot.llm.batching import Coalescer
from bot.llm.client import JsonTask, LlmClient
from bot.llm.prompts import PromptLibrary, fence, new_fence_key
from bot.matching.normalize import fold
from bot.storage.repo import NewMention, Store

log = logging.getLogger(__name__)

RULES = "rules"
"""``Triage.by`` for rule-based results."""

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

_CUES = {
    "crisis_legal": "lawyer*, lawsuit*, sue, suing, sued, class action, legal action, court, "
    "data breach, breach, leaked, hacked, gdpr, regulator, police, avocat*, plainte, proces, "
    "fuite de donnees, abogado*, demanda, denuncia, anwalt, klage, datenleck, datenschutz",
    "spam": "crypto, airdrop, giveaway, onlyfans, click here, dm me for, buy followers, "
    "free followers, casino, forex, earn money, make money fast, whatsapp me, bitcoin doubler",
    "bug_report": "bug, bugs, buggy, crash*, error message, error code, glitch*, regression, "
    "steps to reproduce, stack trace, freezes, plante, fallo*, absturz, sturzt ab, fehlermeldung",
    "sales_lead": "pricing, price, prices, quote, enterprise, business plan, seats, licence*, "
    "license*, demo, trial, procurement, sso, how much, tarif*, devis, precio*, presupuesto, "
    "preis*, angebot, lizenz*",
    "press": "article, interview, journalist, reporter, press release, according to, "
    "announced, announces, review, report, podcast, newsletter, journaliste, communique, "
    "periodista, pressemitteilung",
}

_NEEDS_REPLY = frozenset(
    {"question", "complaint", "bug_report", "sales_lead", "crisis_legal", "praise"}
)
_NEGATIVE = frozenset({"complaint", "bug_report", "crisis_legal"})
_LOW = frozenset({"spam", "press", "other"})
_INTENT_ALIASES = {
    "crisis/legal": "crisis_legal",
    "crisis": "crisis_legal",
    "legal": "crisis_legal",
}


def _cue_re(cues: str) -> re.Pattern[str]:
    parts = []
    for cue in (c.strip() for c in cues.split(",")):
        stem = re.escape(fold(cue.removesuffix("*")))
        parts.append(stem + (r"[\w'-]*" if cue.endswith("*") else ""))
    parts.sort(key=len, reverse=True)
    return re.compile(r"(?<![\w'-])(?:" + "|".join(parts) + r")(?![\w'-])")


_CUE_RES = {intent: _cue_re(cues) for intent, cues in _CUES.items()}


@dataclass(frozen=True)
class TriageResult:
    """A mention's triage and the intent to store with it."""

    intent: str
    triage: Triage


class RuleTriager:
    """Transparent keyword triage (see the module docstring)."""

    def triage(self, mention: Mention) -> TriageResult:
        """Triage one mention by the rules."""
        text = "\n".join(p for p in (mention.title, mention.text) if p)
        folded = fold(text)
        base = classify_intent(text)
        intent, cue = base, None
        for candidate in ("crisis_legal", "spam", "bug_report"):
            found = _CUE_RES[candidate].search(folded)
            if found:
                intent, cue = candidate, found.group(0)
                break
        else:
            for candidate, allowed in (
                ("sales_lead", ("question", "other")),
                ("press", ("other",)),
            ):
                found = _CUE_RES[candidate].search(folded)
                if found and base in allowed:
                    intent, cue = candidate, found.group(0)
                    break
        sentiment = (
            "negative" if intent in _NEGATIVE else "positive" if intent == "praise" else "neutral"
        )
        urgency = "high" if intent == "crisis_legal" else "low" if intent in _LOW else "normal"
        reason = f"rules: cue {cue!r}" if cue else f"rules: {base} cues"
        return TriageResult(
            intent,
            Triage(
                relevant=intent != "spam",
                sentiment=sentiment,
                urgency=urgency,
                needs_reply=intent in _NEEDS_REPLY,
                reason=reason,
                by=RULES,
            ),
        )


def is_urgent(mention: Mention, result: TriageResult, urgent_reach: int) -> bool:
    """The routing rule (see the module docstring)."""
    if mention.urgent or result.triage.urgency == "high" or result.intent == "crisis_legal":
        return True
    reach = mention.author.reach or 0
    return urgent_reach > 0 and result.triage.sentiment == "negative" and reach >= urgent_reach


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


class Triager:
    """Triages alerted batches (LLM when configured, else rules) and stores the results."""

    def __init__(
        self,
        store: Store,
        config: ParleyConfig,
        *,
        client: LlmClient | None = None,
        library: PromptLibrary | None = None,
        batch_size: int = 20,
        window: float = 1.0,
        urgent_reach: int = 10_000,
    ) -> None:
        self.store = store
        self.config = config
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

    async def triage_new(self, batch: list[NewMention]) -> None:
        """The Alerter hook: triage a poll's fresh mentions and raise their urgent flag."""
        urgent = await self.triage([n.id for n in batch])
        for new in batch:
            new.urgent = new.urgent or new.id in urgent

    async def triage(self, mention_ids: Sequence[int]) -> set[int]:
        """Triage and store; returns the ids the routing rule made urgent."""
        mentions = [await self.store.get_mention(i) for i in mention_ids]
        results: dict[int, TriageResult] = {}
        if self.client is not None and self.library is not None and self.client.available:
            results = await self.batches.submit(mentions)
        for mention in mentions:
            if mention.id not in results:
                results[mention.id] = self.rules.triage(mention)
        urgent = {m.id for m in mentions if is_urgent(m, results[m.id], self.urgent_reach)}
        await self.store.save_triage(
            [(m.id, results[m.id].intent, results[m.id].triage, m.id in urgent) for m in mentions]
        )
        return urgent

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
        messages: list[ChatCompletionMessageParam] = [
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
