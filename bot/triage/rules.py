"""Triage by plain keyword rules: no model, no I/O, so a CM can predict every verdict.

New mentions are triaged by :class:`RuleTriager` at once, so their alerts never wait for a
model; the rules also stand in whenever the model is not configured, fails, is paused by its
circuit breaker or has spent its daily budget (bot/triage/model.py). The rules:

- intent: ``crisis_legal`` (lawyer, lawsuit, data breach, GDPR… in en/fr/es/de) beats ``spam``
  (crypto, giveaway, "click here"…) beats ``bug_report`` (bug, crash, error message…) beats the
  rule-based intent of bot/matching/intent.py (complaint, question, praise), after which a
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

import re
from dataclasses import dataclass

from bot.domain.models import Mention, Triage
from bot.matching.intent import classify_intent
from bot.matching.normalize import fold

RULES = "rules"
"""``Triage.by`` for rule-based results."""

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
