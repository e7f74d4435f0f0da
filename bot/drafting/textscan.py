"""Finds what a reply must not carry unseen: links, e-mail addresses, phone numbers and offers.

Every scan reads :func:`normalise`'s output: NFKC (full-width letters and dots become
ASCII), with invisible format characters (category Cf: zero-width spaces and joiners, bidi
controls, soft hyphens, tag characters…) and invisible fillers removed, so none can split a word
or a domain. :func:`clean` is what is posted: the same removal without NFKC (which would rewrite
``™`` or ``½``), keeping the joiners that build emoji sequences.

Domains are recognised with the real public-suffix list (``tldextract``'s bundled snapshot; it
never fetches: no suffix-list URL, no cache), so ``evil.top``, ``update.zip`` and IDN domains are
links while ``e.g.`` or ``Node.js`` are not. Phone numbers are found by ``phonenumbers`` for the
brand's region and the English-speaking defaults.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import phonenumbers
import tldextract

_EXTRACT = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
"""The bundled public-suffix snapshot only: no network, no cache directory."""

_INVISIBLE_FILLERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")
_ZWJ = "\u200d"
_TAG_FLAG_RE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_DOTS = str.maketrans({"\u3002": ".", "\uff61": ".", "\uff0e": "."})
_DEFANGED_DOT_RE = re.compile(r"\s?[\[({]\s?(?:\.|dot)\s?[\])}]\s?", re.IGNORECASE)

_URL_RE = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[\w.+-]+@(?P<host>[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+)"
)
_BARE_RE = re.compile(
    r"(?<![\w@.-])(?P<host>(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_][\w-]{0,62})"
    r"(?P<path>/[^\s<>\"'`]*)?"
)
_TRAILING = ".,;:!?)]}'\"»…"
_PHONE_CANDIDATE_RE = re.compile(r"[+(]?\d[\d\s().\-/]{4,24}\d")
"""A run that may hold a phone number; only these go to phonenumbers (slow on long text)."""
MAX_NUMBER_RUNS = 40
"""More number-like runs than this are not checked one by one: the text is reported as is."""

# Languages whose main region is not their own code upper-cased.
_REGION_OF_LANGUAGE = {"en": "US", "ja": "JP", "da": "DK", "sv": "SE", "nb": "NO", "el": "GR"}
_DEFAULT_REGIONS = ("US", "GB")


def _visible(char: str) -> bool:
    return unicodedata.category(char) != "Cf" and char not in _INVISIBLE_FILLERS


def _invisible_re() -> re.Pattern[str]:
    """One character class of every format character (Cf lives in planes 0, 1 and 14) and
    invisible filler, so removing them is one regex pass instead of a loop in Python."""
    planes = (*range(0x20000), *range(0xE0000, 0xE1000))
    chars = sorted(c for c in map(chr, planes) if not _visible(c))
    return re.compile("[" + "".join(re.escape(c) for c in chars) + "]")


_INVISIBLE_RE = _invisible_re()


def clean(text: str) -> str:
    """``text`` without invisible characters (NFC); joiners inside emoji sequences and the
    tag characters of subdivision flags stay, as they draw what the CM sees."""
    text = unicodedata.normalize("NFC", text)
    if not _INVISIBLE_RE.search(text):
        return text
    kept: list[str] = []
    flags = {m.start(): m.end() for m in _TAG_FLAG_RE.finditer(text)}
    i = 0
    while i < len(text):
        if i in flags:
            kept.append(text[i : flags[i]])
            i = flags[i]
            continue
        char = text[i]
        if _visible(char) or (char == _ZWJ and _joins_emoji(text, i)):
            kept.append(char)
        i += 1
    return "".join(kept)


def _joins_emoji(text: str, i: int) -> bool:
    before, after = text[i - 1 : i], text[i + 1 : i + 2]
    return (
        bool(before and after)
        and unicodedata.category(after) == "So"
        and unicodedata.category(before) in ("So", "Sk", "Mn")
    )


@functools.lru_cache(maxsize=64)
def normalise(text: str) -> str:
    """What every check reads: NFKC, invisible characters removed, ideographic and full-width
    dots as ``.`` (cached: each check of a text reads it several times)."""
    if text.isascii():
        return text  # no format characters, and NFKC changes nothing
    stripped = unicodedata.normalize("NFKC", _INVISIBLE_RE.sub("", text))
    return _INVISIBLE_RE.sub("", stripped).translate(_DOTS)


def unaccent(text: str) -> str:
    """``text`` without accents or other combining marks (case kept)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


@dataclass(frozen=True)
class Link:
    """A link, bare domain or e-mail address found in a text."""

    shown: str
    """As written (scheme dropped), for the CM."""
    host: str
    """Lower-case host, IDN labels in Unicode."""
    path: str = ""
    email: bool = False


def _host(raw: str) -> str:
    labels = raw.lower().strip(".").split(".")
    return ".".join(_unpuny(label) for label in labels)


def _unpuny(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("ascii").decode("idna")
    except UnicodeError:
        return label


def is_domain(host: str) -> bool:
    """Whether ``host`` ends in a public suffix with a name before it (``evil.top``: yes,
    ``e.g``: no)."""
    parts = _EXTRACT(host.lower())
    return bool(parts.suffix and parts.domain)


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group())


def links(text: str) -> list[Link]:
    """Every URL, bare domain and e-mail address in ``text``, in order (read through
    :func:`normalise`, with defanged dots such as ``evil[.]top`` restored)."""
    rest = _DEFANGED_DOT_RE.sub(".", normalise(text))
    found: list[tuple[int, Link]] = []
    for match in _URL_RE.finditer(rest):
        url = match.group().rstrip(_TRAILING).replace("\\", "/")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = _host(parts.hostname or "")
        found.append((match.start(), Link(url.split("://", 1)[-1], host, parts.path)))
    rest = _URL_RE.sub(_blank, rest)
    for match in _EMAIL_RE.finditer(rest):
        host = match.group("host").rstrip(_TRAILING)
        if is_domain(host):
            shown = match.group().rstrip(_TRAILING)
            found.append((match.start(), Link(shown, _host(host), email=True)))
    rest = _EMAIL_RE.sub(_blank, rest)
    for match in _BARE_RE.finditer(rest):
        if is_domain(match.group("host")):
            path = (match.group("path") or "").rstrip(_TRAILING)
            link = Link(match.group("host") + path, _host(match.group("host")), path)
            found.append((match.start(), link))
    return [link for _, link in sorted(found, key=lambda pair: pair[0])]


def link_allowed(link: Link, allowed: list[str]) -> bool:
    """Whether ``link`` matches an ``allowed_links`` entry by host (the entry's host or one of
    its subdomains, compared label by label) and, when the entry has a path, by whole path
    segments. An e-mail address needs its domain's host only."""
    for entry in allowed:
        entry = re.sub(r"^[a-z]+://", "", entry.strip(), flags=re.IGNORECASE).rstrip("/")
        entry_host, _, entry_path = entry.partition("/")
        host = _host(normalise(entry_host))
        if link.host != host and not link.host.endswith("." + host):
            continue
        if link.email or not entry_path:
            return True
        path = link.path.strip("/")
        if path == entry_path or path.startswith(entry_path + "/"):
            return True
    return False


def phone_regions(language: str) -> tuple[str, ...]:
    """The regions whose numbers are looked for: the brand language's (``fr`` → FR,
    ``fr-CA`` → CA), then the English-speaking defaults."""
    parts = re.split(r"[-_]", language)
    region = next((p.upper() for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
    region = region or _REGION_OF_LANGUAGE.get(parts[0].lower(), parts[0].upper())
    regions = [region] if region in phonenumbers.SUPPORTED_REGIONS else []
    return tuple(dict.fromkeys([*regions, *_DEFAULT_REGIONS]))


def phones(text: str, language: str) -> list[str]:
    """Every valid phone number in ``text`` (links and e-mail addresses aside), as written; a
    text with more than :data:`MAX_NUMBER_RUNS` runs of digits gets one line saying so."""
    rest = _EMAIL_RE.sub(_blank, _URL_RE.sub(_blank, normalise(text)))
    candidates = list(_PHONE_CANDIDATE_RE.finditer(rest))
    if len(candidates) > MAX_NUMBER_RUNS:
        return [f"{len(candidates)} runs of digits, too many to check one by one"]
    found: dict[str, None] = {}
    for candidate in candidates:
        # A few characters of context on each side let the matcher judge the surroundings.
        window = rest[max(0, candidate.start() - 3) : candidate.end() + 3]
        for region in phone_regions(language):
            for match in phonenumbers.PhoneNumberMatcher(window, region):
                found.setdefault(match.raw_string, None)
    return list(found)
