"""The ways platforms count a reply's length (see platform-facts.md); which platform uses which,
and its limit, is in each connector's spec (:mod:`bot.connectors.catalog` looks them up).

X counts a weighted length (twitter-text v3: most Latin, Greek, Cyrillic… code points weigh 1,
CJK and others 2, an emoji sequence 2, any link 23); Bluesky counts extended grapheme clusters
(what a reader sees as one character); Mastodon counts characters with every link as 23;
everything else counts code points.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

DEFAULT_REPLY_LIMIT = 5_000
"""The reply limit of a platform whose connector sets none, when the caller gives no other."""

LINK_WEIGHT = 23
"""X and Mastodon count every link as this many characters, whatever its length."""

_URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# twitter-text v3: code points in these ranges weigh 1, all others 2.
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

_ZWJ = 0x200D
_CR, _LF = 0x0D, 0x0A


def link_weighted_length(text: str) -> int:
    """Code points, with every link counted as :data:`LINK_WEIGHT` (Mastodon's rule)."""
    return sum(LINK_WEIGHT if is_link else len(part) for part, is_link in _split_links(text))


def x_weighted_length(text: str) -> int:
    """X's weighted length: links 23, emoji sequences 2, other code points 1 or 2."""
    total = 0
    for part, is_link in _split_links(unicodedata.normalize("NFC", text)):
        if is_link:
            total += LINK_WEIGHT
            continue
        for cluster in graphemes(part):
            if _is_emoji_cluster(cluster):
                total += 2
            else:
                total += sum(1 if _light(ord(ch)) else 2 for ch in cluster)
    return total


def grapheme_count(text: str) -> int:
    """How many extended grapheme clusters ``text`` holds."""
    return sum(1 for _ in graphemes(text))


def graphemes(text: str) -> Iterator[str]:
    """Split ``text`` into extended grapheme clusters (the core rules of UAX #29).

    Kept together: CR LF; a base with its combining marks, variation selectors, emoji skin
    tones and tags; emoji joined by ZWJ; regional-indicator pairs (flags); Hangul syllables
    written as jamo. Prepend characters (rare) are not handled."""
    cluster = ""
    previous = -1
    flag_half = False
    for ch in text:
        cp = ord(ch)
        if cluster and _joins(previous, cp, flag_half):
            cluster += ch
            flag_half = False if _regional(cp) else flag_half
        else:
            if cluster:
                yield cluster
            cluster = ch
            flag_half = _regional(cp)
        previous = cp
    if cluster:
        yield cluster


def _joins(previous: int, cp: int, flag_half: bool) -> bool:
    if previous == _CR:
        return cp == _LF
    if previous in (_CR, _LF) or cp in (_CR, _LF):
        return False
    if _extend(cp) or cp == _ZWJ:
        return True
    if previous == _ZWJ:
        return _pictographic(cp)
    if _regional(previous) and _regional(cp):
        return flag_half
    return _hangul_joins(previous, cp)


def _extend(cp: int) -> bool:
    if 0x1F3FB <= cp <= 0x1F3FF or 0xFE00 <= cp <= 0xFE0F or 0xE0020 <= cp <= 0xE007F:
        return True
    if 0xE0100 <= cp <= 0xE01EF or cp == 0x200C:
        return True
    return unicodedata.category(chr(cp)) in ("Mn", "Me", "Mc")


def _regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _pictographic(cp: int) -> bool:
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2300 <= cp <= 0x23FF
        or 0x2B00 <= cp <= 0x2BFF
        or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D)
    )


def _is_emoji_cluster(cluster: str) -> bool:
    return any(_pictographic(ord(c)) or _regional(ord(c)) for c in cluster)


def _hangul_kind(cp: int) -> str:
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


def _hangul_joins(previous: int, cp: int) -> bool:
    before, after = _hangul_kind(previous), _hangul_kind(cp)
    if before == "L":
        return after in ("L", "V", "LV", "LVT")
    if before in ("LV", "V"):
        return after in ("V", "T")
    if before in ("LVT", "T"):
        return after == "T"
    return False


def _light(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _LIGHT_RANGES)


def _split_links(text: str) -> Iterator[tuple[str, bool]]:
    position = 0
    for match in _URL_RE.finditer(text):
        if match.start() > position:
            yield text[position : match.start()], False
        yield match.group(0), True
        position = match.end()
    if position < len(text):
        yield text[position:], False
