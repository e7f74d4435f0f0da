"""Near-identical text detection: copies, reposts and lightly edited versions of one text.

**Normalisation.** Case, links, @handles (Mastodon's ``@user@host`` too), a leading ``RT`` and a
trailing ``via``/``cc``, emoji and punctuation are dropped; what remains is a list of words
(scripts written without spaces, such as Chinese or Thai, give one word per character, via
:func:`bot.matching.normalize.tokenize`). So a retweet, a copy with another link or other
handles, and a copy with other case, punctuation or emoji have the *same* words.

**Sketch.** The overlapping word pairs (bigrams) are the text's shingles, each hashed by CRC-32
(one C call per word: a CRC continued from the previous word's CRC). "One permutation hashing"
sorts them into 16 bins by their top 4 bits; a bin keeps its smallest hash and 4 bits of it
(b-bit MinHash) are one nibble of the 64-bit fingerprint. An empty bin borrows other bits of the
next bin's minimum (rotation densification). Two texts' nibbles agree with probability about
J + (1 - J)/16, where J is the Jaccard similarity of their bigram sets.

**Threshold.** Two fingerprints are near-identical when at least 13 of their 16 nibbles agree
(``MAX_DIFFERENT_NIBBLES`` = 3), which in effect means J of about 0.7 or more. Measured on
50-word prose: one edited (changed, added or removed) word still matches 98% of the time, two
88%, three 74% (30 words: 93%, 65%, 38%); among 2,467 distinct passages of package docs the only
collapses were repeated boilerplate (bigram J 0.38-1, median 0.81). By the binomial tail,
different texts sharing a phrase (J ≈ 0.3) collapse with probability ~1e-4 per pair, unrelated
ones ~1e-13. A false collapse hides a mention while a missed one only shows a copy twice, so
the threshold leans to precision.

**Short texts.** A text of fewer than ``MIN_WORDS`` (5) words has no fingerprint (``0``, which
never matches): "love @acme" from two people are two mentions. From 5 to 15 words (below
``FUZZY_MIN_WORDS``) the fingerprint is a plain hash of the word sequence, so only texts with
exactly the same words (after normalisation) match: with so few shingles a sketch would be
noise, and a changed word in a one-line post usually changes what it says.

**Lookup.** :class:`NearDupIndex` keeps every fingerprint under each of its four 16-bit quarters;
texts that differ in at most 3 nibbles share at least one quarter (pigeonhole), so looking up the
four quarters and checking those candidates finds every match.

**Cost** (pure Python, this project's 2-core CI machine, 300-character texts): about 20 µs per
fingerprint and 2 µs per lookup in an index of 10,000 (6 µs at 100,000).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from hashlib import blake2b
from itertools import repeat
from operator import and_, lshift
from zlib import crc32

from bot.matching.normalize import tokenize

MIN_WORDS = 5
"""Texts with fewer (normalised) words get no fingerprint and never collapse."""

FUZZY_MIN_WORDS = 16
"""Texts with fewer words only match texts with exactly the same words."""

MAX_DIFFERENT_NIBBLES = 3
"""Fingerprints differing in at most this many of their 16 nibbles are near-identical."""

NO_FINGERPRINT = 0
"""The fingerprint of a text too short to compare; the index ignores it."""

MAX_FINGERPRINT_CHARS = 5000
"""Only this many leading characters are fingerprinted (bounds the cost of huge texts)."""

_MASK64 = (1 << 64) - 1
_NIBBLES = 0x1111_1111_1111_1111
_BINS = 16
_BIN_STARTS = tuple(b << 28 for b in range(_BINS))
_NIBBLE_SHIFTS = tuple(16 * (b // 4) for b in range(_BINS))
_NIBBLE_MASKS = tuple(0xF << (4 * b) for b in range(_BINS))
_WRAP = 1 << 32  # past every CRC-32: marks the smallest hash copied to the end of the list
_CREDIT_WORDS = (b"rt", b"mt", b"via", b"cc")

# Links and @handles (an email's "@host" too, harmlessly). Each regex runs only on the texts
# that need it: on this hot path a regex pass costs as much as all the hashing.
_LINKS = re.compile(r"(?:https?://|www\.|@)\S*")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_SPACELESS_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]"
)
# ASCII letters and digits stay, other ASCII becomes a space; bytes of UTF-8 letters stay.
_WORD_BYTES = bytes(b if chr(b).isalnum() or b >= 0x80 else 0x20 for b in range(256))


def _letters_only(match: re.Match[str]) -> str:
    """A run of non-ASCII characters with everything but letters and digits (emoji…) blanked."""
    run = match.group()
    if run.isalnum():
        return run
    return "".join(c if c.isalnum() else " " for c in run)


def _words(text: str) -> list[bytes]:
    """The normalised words of ``text`` as UTF-8 (see the module docstring)."""
    text = text[:MAX_FINGERPRINT_CHARS].lower()
    if "@" in text or "://" in text or "www." in text:
        text = _LINKS.sub(" ", text)
    if not text.isascii():
        text = _NON_ASCII.sub(_letters_only, text)
        if _SPACELESS_SCRIPT.search(text):
            words = [w.encode("utf-8", "surrogatepass") for w in tokenize(text)]
            return _strip_credits(words)
    return _strip_credits(text.encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split())


def _strip_credits(words: list[bytes]) -> list[bytes]:
    """Drop a leading "RT" and a trailing "via"/"cc" left over from removed handles."""
    if words and words[0] in _CREDIT_WORDS:
        del words[0]
    if words and words[-1] in _CREDIT_WORDS:
        del words[-1]
    return words


def text_fingerprint(text: str) -> int:
    """A signed 64-bit sketch of ``text``'s words (see the module docstring); 0 if too short."""
    words = _words(text)
    if len(words) < MIN_WORDS:
        return NO_FINGERPRINT
    if len(words) < FUZZY_MIN_WORDS:
        digest = blake2b(b" ".join(words), digest_size=8).digest()
        return _signed(int.from_bytes(digest) or 1)
    # CRC-32 continued from the previous word's CRC is the CRC of the two words together: a
    # bigram hash in one C call per word. Everything below runs in C (map, sorted, bisect):
    # this is the hot path of the whole pipeline.
    shingles = sorted(map(crc32, words[1:], map(crc32, words)))
    shingles.append(shingles[0] | _WRAP)
    # Bins are the top 4 bits, so sorting groups them and a bin's minimum is its first hash. An
    # empty bin gets the next bin's minimum, wrapping around (rotation densification). Bin i's
    # nibble is bits 4(i mod 4)..4(i mod 4)+3 of its minimum (low bits: a minimum's high bits
    # lean small), so a borrowed nibble is other bits of the minimum than its owner's.
    firsts = map(shingles.__getitem__, map(bisect_left, repeat(shingles), _BIN_STARTS))
    return _signed(sum(map(and_, map(lshift, firsts, _NIBBLE_SHIFTS), _NIBBLE_MASKS)) or 1)


def _signed(value: int) -> int:
    """The two's-complement reading of a 64-bit value (SQLite INTEGER is signed)."""
    return value - (1 << 64) if value >> 63 else value


def different_nibbles(first: int, second: int) -> int:
    """How many of the 16 nibbles of two fingerprints differ."""
    x = (first ^ second) & _MASK64
    return ((x | x >> 1 | x >> 2 | x >> 3) & _NIBBLES).bit_count()


class NearDupIndex:
    """Finds an earlier near-identical text by fingerprint, in time independent of its size."""

    __slots__ = ("_bands", "_entries")

    def __init__(self) -> None:
        # fingerprint (unsigned) → (insertion number, mention id), the first one added wins.
        self._entries: dict[int, tuple[int, int]] = {}
        self._bands: tuple[dict[int, list[int]], ...] = ({}, {}, {}, {})

    def __len__(self) -> int:
        """How many distinct fingerprints are indexed."""
        return len(self._entries)

    def add(self, fingerprint: int, mention_id: int) -> None:
        """Index ``mention_id`` under ``fingerprint`` (ignored for ``NO_FINGERPRINT``)."""
        key = fingerprint & _MASK64
        if key == NO_FINGERPRINT or key in self._entries:
            return
        self._entries[key] = (len(self._entries), mention_id)
        for shift, band in zip((0, 16, 32, 48), self._bands, strict=True):
            band.setdefault((key >> shift) & 0xFFFF, []).append(key)

    def find(self, fingerprint: int) -> int | None:
        """The id of the earliest-added closest near-identical text, or ``None``."""
        key = fingerprint & _MASK64
        if key == NO_FINGERPRINT:
            return None
        exact = self._entries.get(key)
        if exact is not None:
            return exact[1]
        best: tuple[int, int, int] | None = None  # (different nibbles, insertion, id)
        for shift, band in zip((0, 16, 32, 48), self._bands, strict=True):
            for candidate in band.get((key >> shift) & 0xFFFF, ()):
                # Hot loop: a cheap bit count rejects most candidates (3 nibbles are ≤ 12 bits).
                if (key ^ candidate).bit_count() > 4 * MAX_DIFFERENT_NIBBLES:
                    continue
                diff = different_nibbles(key, candidate)
                if diff <= MAX_DIFFERENT_NIBBLES:
                    order, mention_id = self._entries[candidate]
                    if best is None or (diff, order) < best[:2]:
                        best = (diff, order, mention_id)
        return None if best is None else best[2]
