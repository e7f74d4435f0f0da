"""Checks every text before it may be posted, whoever wrote it: a model, a template or a person.

Every check reads the text normalised (:func:`bot.drafting.textscan.normalise`: NFKC,
zero-width, bidi and other invisible format characters removed), so full-width letters,
``@\u200beveryone`` or a zero-width space inside a copied sentence hide nothing. What is saved
(and posted) is :func:`bot.drafting.textscan.clean`'s text: the invisible characters are gone.

Findings (:meth:`DraftGuard.findings`), each a one-line reason:

- a mass ping (``@everyone``, ``@here``, ``<!channel>``, a Discord role ping);
- a link, bare domain or e-mail address whose host is not an ``allowed_links`` entry or one of
  its subdomains (compared label by label: ``acme.com.evil.top`` is ``evil.top``), or whose path
  is outside the entry's path; domains are recognised with the public-suffix list, so
  ``evil.top``, ``update.zip``, IDN and full-width domains count;
- a phone number (``phonenumbers``, for the brand language's region, the US and the UK);
- a percentage off, a promo or discount code, or a gift card, in English, French, Spanish or
  German (:mod:`bot.drafting.offers`);
- eight or more words in a row copied from the mention or its thread (echoing an injection or
  an insult), or from Parley's own instructions (a prompt leak).

A draft (LLM or template) with any finding is refused: it is not offered. A human edit with
findings is held until the CM confirms it a second time ("post anyway"); the review service
audits both steps (bot/services/review.py). An empty draft, or one over the platform's limit
that cannot be shortened by dropping its last sentences, is refused too.

Flagged for the CM (offered, with a warning): a promise of a refund, a discount or a legal
admission, unless the brand-voice file allows that kind under '## Allowed promises'; and a text
that was shortened to fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.config import BrandConfig
from bot.connectors.catalog import reply_length, reply_limit
from bot.domain.limits import DEFAULT_REPLY_LIMIT
from bot.domain.models import Mention
from bot.drafting import textscan
from bot.drafting.offers import gift_cards, percents_off, promo_codes
from bot.drafting.textscan import clean, normalise
from bot.llm.prompts import PromptLibrary
from bot.matching.normalize import fold

ECHO_WORDS = 8
"""Copying this many consecutive words from the mention or the instructions is refused."""

_MASS_PING_RE = re.compile(
    r"@(?:everyone|here|channel|all)\b|<!(?:everyone|here|channel)>|<@&\d+>", re.IGNORECASE
)
_WORD_RE = re.compile(r"\w+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")

# Cues are folded (no accents, lower case); a trailing * matches any word ending.
_PROMISES: dict[str, tuple[str, str]] = {
    "refunds": (
        "refund*, money back, reimburs*, compensat*, rembours*, reembols*, devolvemos, "
        "devolucion, erstatt*, ruckerstatt*, geld zuruck, entschadig*",
        "promises a refund or compensation",
    ),
    "discounts": (
        "discount*, coupon*, promo code, voucher*, % off, free month*, months free, for free, "
        "code promo, reduction, remise, descuento*, cupon*, rabatt*, gutschein*",
        "offers a discount or something for free",
    ),
    "legal": (
        "liable, liability, negligen*, our fault, we admit, admit fault, lawsuit, settlement, "
        "responsables, notre faute, nuestra culpa, unsere schuld, haftbar, haftung, "
        "schadensersatz, indemn*",
        "reads as a legal admission",
    ),
}


def _cue_re(cues: str) -> re.Pattern[str]:
    parts = []
    for cue in (c.strip() for c in cues.split(",")):
        stem = re.escape(cue.removesuffix("*"))
        parts.append(stem + (r"\w*" if cue.endswith("*") else ""))
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


_PROMISE_RES = {kind: (_cue_re(cues), why) for kind, (cues, why) in _PROMISES.items()}


@dataclass(frozen=True)
class Checked:
    """The outcome for one draft: the text to offer (None: refused), why, and flags."""

    text: str | None
    problems: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


class DraftGuard:
    """Checks drafts for a brand and platform (see the module docstring)."""

    def __init__(
        self, library: PromptLibrary | None = None, *, default_limit: int = DEFAULT_REPLY_LIMIT
    ) -> None:
        self.library = library
        self.default_limit = default_limit

    def check(self, text: str, mention: Mention, brand: BrandConfig) -> Checked:
        """Refuse, shorten or flag one draft for ``mention`` (the text offered is cleaned)."""
        text = clean(text).strip()
        if not text:
            return Checked(None, ("empty",))
        problems = self.findings(text, mention, brand)
        if problems:
            return Checked(None, problems)
        flags: list[str] = []
        limit = reply_limit(mention.platform, self.default_limit, handle=mention.author.handle)
        if reply_length(text, mention.platform) > limit:
            shortened = shorten(text, mention.platform, limit, brand.signature)
            if shortened is None:
                return Checked(None, (f"longer than {mention.platform}'s limit of {limit}",))
            text = shortened
            flags.append(f"shortened to fit {mention.platform}'s limit of {limit}: reread it")
        allowed = self.library.voice(brand).allowed_promises if self.library else frozenset()
        folded = fold(text)
        for kind, (pattern, why) in _PROMISE_RES.items():
            if kind not in allowed and pattern.search(folded):
                flags.append(f"{why}: check the brand agreed to it before approving")
        return Checked(text, (), tuple(flags))

    def findings(self, text: str, mention: Mention, brand: BrandConfig) -> tuple[str, ...]:
        """Every reason ``text`` may not be posted unseen (see the module docstring)."""
        reasons: list[str] = []
        if _MASS_PING_RE.search(normalise(text)):
            reasons.append("pings everyone")
        for link in textscan.links(text):
            if not textscan.link_allowed(link, brand.allowed_links):
                kind = "gives the e-mail address" if link.email else "links to"
                reasons.append(f"{kind} {link.shown}, which is not in allowed_links")
        reasons += _first("gives a phone number", textscan.phones(text, brand.language))
        reasons += _first("offers a percentage off", percents_off(text))
        reasons += _first("gives a promo code", promo_codes(text))
        reasons += _first("mentions a gift card", gift_cards(text))
        untrusted = "\n".join(p for p in (mention.title, mention.text, mention.thread_context) if p)
        if copies_words(text, untrusted):
            reasons.append("repeats the mention's own words")
        if self.library is not None and copies_words(text, self.library.instructions_text()):
            reasons.append("repeats Parley's instructions")
        return tuple(dict.fromkeys(reasons))


def _first(kind: str, found: list[str]) -> list[str]:
    return [f"{kind} ({found[0]})"] if found else []


def links_in(text: str) -> list[str]:
    """Every link, bare domain and e-mail address in ``text``, as written (scheme dropped)."""
    return [link.shown for link in textscan.links(text)]


def link_allowed(link: str, allowed: list[str]) -> bool:
    """Whether ``link`` (a URL, ``host/path`` or e-mail address) is allowed by ``allowed``
    (see :func:`bot.drafting.textscan.link_allowed`); text that is no link at all is not."""
    found = textscan.links(link)
    return bool(found) and all(textscan.link_allowed(one, allowed) for one in found)


def copies_words(text: str, source: str, run: int = ECHO_WORDS) -> bool:
    """Whether ``text`` holds ``run`` consecutive words of ``source`` (accents and case
    ignored)."""
    source_words = _WORD_RE.findall(fold(normalise(source)))
    if len(source_words) < run:
        return False
    grams = {tuple(source_words[i : i + run]) for i in range(len(source_words) - run + 1)}
    words = _WORD_RE.findall(fold(normalise(text)))
    return any(tuple(words[i : i + run]) in grams for i in range(len(words) - run + 1))


def shorten(text: str, platform: str, limit: int, signature: str) -> str | None:
    """Drop whole sentences from the end (the signature stays) until the text fits; None when
    even the first sentence is too long."""
    body, sign = text, ""
    if signature and text.endswith(signature):
        body, sign = text[: -len(signature)].rstrip(), signature
    sentences = _SENTENCE_END_RE.split(body)
    while len(sentences) > 1:
        sentences.pop()
        candidate = " ".join(sentences) + (f" {sign}" if sign else "")
        if reply_length(candidate, platform) <= limit:
            return candidate
    return None
