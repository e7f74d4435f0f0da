"""Rule-based intent of a mention: question, complaint, praise or other.

The rules are deliberately plain so a community manager can predict them:

1. The text is folded with :func:`bot.matching.normalize.fold` (accents removed, case-folded)
   and curly apostrophes are made straight, so "GÉNIAL", "génial" and "genial" are one word.
2. Each intent has a list of cues per language (English, French, Spanish, German). A cue is a
   word or a phrase matched on word boundaries; a cue ending in ``*`` matches any word starting
   with it ("crash*" matches crash, crashes, crashing).
3. complaint — a negative cue ("broken", "down", "refund", "worst", "panne", "nul", "estafa",
   "kaputt", "doesn't work" …), or a praise cue negated by one of the two words before it
   ("not great", "pas génial", "nicht gut").
4. question — a question mark (including "¿"), or a sentence opening with an interrogative
   ("how", "why", "est-ce que", "comment", "cómo", "wie", "gibt es" …).
5. praise — a positive cue ("love", "great", "thanks", "merci", "génial", "gracias", "danke" …).
6. other — none of the above (press coverage, neutral chatter, sales enquiries without "?").

Ties are broken in that order: complaint beats question beats praise, so a complaint phrased
as a question ("why is sync broken again?") is a complaint.
"""

from __future__ import annotations

import re

from bot.matching.normalize import fold

INTENTS = ("question", "complaint", "praise", "other")
"""Every value :func:`classify_intent` can return."""

# Cues per language, comma-separated; written already folded (no accents, lower case).
_COMPLAINT = {
    "en": "broken, down, outage, refund*, worst, terrible, awful, horrible, useless, garbage, "
    "trash, scam, crash*, bug, bugs, buggy, glitch*, fail*, error*, lost, losing, deleted, "
    "wiped, disappointed, disappointing, frustrat*, annoying, unacceptable, angry, furious, "
    "ripoff, rip-off, overcharg*, charged twice, double charged, cancel my, not working, "
    "doesn't work, does not work, stopped working, won't sync, can't log in, cannot log in, "
    "still waiting, no response, lawyer*, chargeback",
    "fr": "panne, nul, nulle, plante, arnaque, rembours*, inadmissible, inacceptable, "
    "catastroph*, honteux, decu, decue, perdu, perdues, supprime*, ne marche pas, "
    "ne marche plus, ne fonctionne pas, ne fonctionne plus, pire, insupportable, avocat",
    "es": "caido, caida, no funciona, estafa, reembolso*, devolucion, peor, fatal, fallo*, "
    "perdi, perdido*, decepcion*, inaceptable, harto, harta, abogado*",
    "de": "kaputt, ausfall, absturz, sturzt ab, abgesturzt, funktioniert nicht, geht nicht, "
    "ruckerstattung, geld zuruck, betrug, schlecht, schlechteste*, schlimm*, katastroph*, "
    "verloren, enttausch*, unverschamt, argerlich, nervig, fehler*, anwalt",
}

_PRAISE = {
    "en": "love, loving, loved, great, awesome, amazing, excellent, fantastic, brilliant, "
    "perfect, thanks, thank you, thx, kudos, best, favorite, favourite, impressed, recommend*, "
    "lifesaver, game changer, well done, nice, beautiful, delightful, smooth",
    "fr": "merci, genial, geniale, super, bravo, adore, j'adore, parfait*, excellent*, "
    "formidable, magnifique, recommande, chapeau, incroyable",
    "es": "gracias, encanta, me encanta, increible, maravill*, perfecto, buenisim*, recomiendo, "
    "mejor",
    "de": "danke, toll, klasse, super, liebe, grossartig, hervorragend, perfekt, empfehle*, "
    "begeistert, gut, wunderbar",
}

# Only openers that rarely start a statement: "when", "como", "wie"… often do, and questions
# in those languages nearly always carry a "?" anyway.
_QUESTION_OPENERS = {
    "en": "how, why, which, can, could, does, is there, are there, is it, is anyone, anyone, "
    "any way",
    "fr": "comment, pourquoi, est-ce que, combien, y a-t-il, peut-on, savez-vous, quelqu'un",
    "es": "por que, alguien, se puede",
    "de": "warum, wieso, weshalb, gibt es, kann man, kann ich, weiss jemand, hat jemand",
}

_NEGATORS = frozenset(
    {"not", "never", "no", "isn't", "wasn't", "pas", "jamais", "nicht", "kein", "keine"}
)
"""A praise cue right after one of these (within two words) counts as a complaint."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})
_WORD = re.compile(r"[\w'-]+")
_SENTENCE_BREAK = re.compile(r"[.!?¿¡\n;]+")


def _fold(text: str) -> str:
    # A phone's curly apostrophe (U+2019) must match the straight one in cues like "doesn't".
    return fold(text.translate(_APOSTROPHES))


def _cue_pattern(cues_by_language: dict[str, str]) -> re.Pattern[str]:
    parts = []
    for cue in (c.strip() for cues in cues_by_language.values() for c in cues.split(",")):
        stem = re.escape(_fold(cue.removesuffix("*")))
        parts.append(stem + (r"[\w'-]*" if cue.endswith("*") else ""))
    # Longest first so "ne marche pas" wins over a shorter cue at the same place.
    parts.sort(key=len, reverse=True)
    return re.compile(r"(?<![\w'-])(?:" + "|".join(parts) + r")(?![\w'-])")


_COMPLAINT_RE = _cue_pattern(_COMPLAINT)
_PRAISE_RE = _cue_pattern(_PRAISE)
_OPENER_RE = re.compile(r"^\s*" + _cue_pattern(_QUESTION_OPENERS).pattern)


def _praise_cues(folded: str) -> tuple[bool, bool]:
    """Whether ``folded`` holds a plain praise cue, and whether it holds a negated one."""
    plain = negated = False
    for match in _PRAISE_RE.finditer(folded):
        before = _WORD.findall(folded[: match.start()])[-2:]
        if _NEGATORS.intersection(before):
            negated = True
        else:
            plain = True
    return plain, negated


def _is_question(text: str, folded: str) -> bool:
    if "?" in text or "¿" in text:
        return True
    return any(_OPENER_RE.match(sentence) for sentence in _SENTENCE_BREAK.split(folded))


def classify_intent(text: str) -> str:
    """Return "complaint", "question", "praise" or "other" for ``text`` (see module rules)."""
    folded = _fold(text)
    praised, negated_praise = _praise_cues(folded)
    if negated_praise or _COMPLAINT_RE.search(folded):
        return "complaint"
    if _is_question(text, folded):
        return "question"
    if praised:
        return "praise"
    return "other"
