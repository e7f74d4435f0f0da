"""Checks every draft passes before a community manager sees it, whoever wrote it.

Refused outright (the variant is not offered): an empty text, a mass ping (``@everyone``,
``@here``…), a link or e-mail domain outside the brand's ``allowed_links``, eight or more words
in a row copied from the mention or its thread (echoing an injection or a slur), eight or more
words in a row from Parley's own instructions (a prompt leak), and a text over the platform's
limit that cannot be shortened by dropping its last sentences.

Flagged for the CM (offered, with a warning): a promise of a refund, a discount or a legal
admission, unless the brand-voice file allows that kind under '## Allowed promises'; and a text
that was shortened to fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.config import BrandConfig
from bot.domain.limits import DEFAULT_REPLY_LIMIT, reply_length, reply_limit
from bot.domain.models import Mention
from bot.llm.prompts import PromptLibrary
from bot.matching.normalize import fold

ECHO_WORDS = 8
"""Copying this many consecutive words from the mention or the instructions is refused."""

_MASS_PING_RE = re.compile(
    r"@(?:everyone|here|channel|all)\b|<!(?:everyone|here|channel)>|<@&\d+>", re.IGNORECASE
)
_TLDS = (
    "com|org|net|io|app|dev|co|ai|me|ly|gg|xyz|info|biz|link|site|online|shop|store|tech|page|sh"
    "|to|tv|us|uk|eu|fr|de|es|it|pt|nl|be|ch|at|se|no|dk|fi|pl|cz|ie|ca|au|nz|br|mx|ar|jp|cn|in"
    "|ru|kr|social|cloud|ly|gl|so|club|news|blog|help"
)
_LINK_RE = re.compile(
    r"(?P<scheme>https?://)(?P<host>[^\s/:?#<>\"')\]]+)(?P<path>[^\s<>\"')\]]*)"
    r"|(?<![\w@./-])(?P<bare>(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:" + _TLDS + r"))"
    r"(?P<barepath>/[^\s<>\"')\]]*)?(?![\w-])"
    r"|[\w.+-]+@(?P<mailhost>(?:[a-z0-9-]+\.)+[a-z]{2,})",
    re.IGNORECASE,
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
        """Refuse, shorten or flag one draft for ``mention``."""
        text = text.strip()
        if not text:
            return Checked(None, ("empty",))
        if _MASS_PING_RE.search(text):
            return Checked(None, ("pings everyone",))
        outside = [link for link in links_in(text) if not link_allowed(link, brand.allowed_links)]
        if outside:
            return Checked(None, (f"links to {outside[0]}, which is not in allowed_links",))
        untrusted = "\n".join(p for p in (mention.title, mention.text, mention.thread_context) if p)
        if copies_words(text, untrusted):
            return Checked(None, ("repeats the mention's own words",))
        if self.library is not None and copies_words(text, self.library.instructions_text()):
            return Checked(None, ("repeats Parley's instructions",))
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


def links_in(text: str) -> list[str]:
    """Every link, bare domain and e-mail domain in ``text`` (as written, without scheme)."""
    found = []
    for match in _LINK_RE.finditer(text):
        if match.group("host"):
            found.append((match.group("host") + match.group("path")).rstrip(".,;:!?"))
        elif match.group("bare"):
            found.append((match.group("bare") + (match.group("barepath") or "")).rstrip(".,;:!?"))
        else:
            found.append(match.group("mailhost"))
    return found


def link_allowed(link: str, allowed: list[str]) -> bool:
    """Whether ``link`` (host[/path]) is one of the allowed domains or URL prefixes; a domain
    also allows its subdomains."""
    host, _, path = link.lower().partition("/")
    for entry in allowed:
        entry = re.sub(r"^https?://", "", entry.strip().lower()).rstrip("/")
        entry_host, _, entry_path = entry.partition("/")
        if (host == entry_host or host.endswith("." + entry_host)) and path.startswith(entry_path):
            return True
    return False


def copies_words(text: str, source: str, run: int = ECHO_WORDS) -> bool:
    """Whether ``text`` holds ``run`` consecutive words of ``source`` (accents and case
    ignored)."""
    source_words = _WORD_RE.findall(fold(source))
    if len(source_words) < run:
        return False
    grams = {tuple(source_words[i : i + run]) for i in range(len(source_words) - run + 1)}
    words = _WORD_RE.findall(fold(text))
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
