"""Text folding and word tokenization shared by queries and mentions.

Both sides of a match go through the same two functions, so whatever a rule's words fold to, the
mention's words fold to the same thing:

* :func:`fold` applies NFKC (full-width letters become ASCII, ligatures split), case
  folding (``ß`` becomes ``ss``) and strips accents and other non-spacing marks (``Café`` becomes
  ``cafe``).
* :func:`tokenize` folds and cuts the text into words. A word is a run of letters, digits,
  underscores and spacing vowel signs (Indic scripts); everything else separates words, so
  ``Acme's`` gives ``acme``, ``s`` and ``acme-cloud`` gives ``acme``, ``cloud``. Scripts written
  without spaces between words (Chinese, Japanese, Korean, Thai, Lao, Khmer, Myanmar) give one word
  per character, so a query in those scripts becomes a sequence of characters to find anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Code points that are written without spaces between words: each one becomes its own token.
_PER_CHAR_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x3005, 0x3007),  # ideographic iteration and closing marks, number zero
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3038, 0x303C),
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x323AF),  # CJK extensions B to H and compatibility supplement
)

# Marks (Mn, Me, Mc) exist only in planes 0 and 1, plus variation selectors in plane 14.
_MARKS_LIMIT = 0x20000
_PLANE14_MARKS = range(0xE0100, 0xE01F0)


def _char_class(codepoints: Iterable[int]) -> str:
    """A regex character class body covering ``codepoints`` as compact ranges."""
    parts: list[str] = []
    start = prev = -2
    for cp in [*sorted(codepoints), -2]:
        if cp != prev + 1:
            if start >= 0:
                first, last = re.escape(chr(start)), re.escape(chr(prev))
                parts.append(first if start == prev else f"{first}-{last}")
            start = cp
        prev = cp
    return "".join(parts)


def _split_class(codepoints: list[int]) -> tuple[str, str]:
    """Class bodies for the BMP and astral parts of ``codepoints``, plus a guard for the latter.

    ``re`` tests a class holding astral ranges by scanning every range, but a BMP-only class by a
    table lookup; the astral part is therefore only tried behind a one-range lookahead.
    """
    astral = [cp for cp in codepoints if cp > 0xFFFF]
    bmp = _char_class(cp for cp in codepoints if cp <= 0xFFFF)
    guard = f"(?=[{_char_class(range(min(astral), max(astral) + 1))}])[{_char_class(astral)}]"
    return bmp, guard


def _build_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    marks: list[int] = list(_PLANE14_MARKS)
    spacing: list[int] = []
    for cp in range(_MARKS_LIMIT):
        kind = unicodedata.category(chr(cp))
        if kind == "Mc":
            spacing.append(cp)
        elif kind in ("Mn", "Me"):
            marks.append(cp)
    marks_bmp, marks_astral = _split_class(marks)
    spacing_bmp, spacing_astral = _split_class(spacing)
    per_char = _char_class(cp for lo, hi in _PER_CHAR_RANGES for cp in range(lo, hi + 1))
    # A token is one letter of a per-character script, or a run of other word characters and
    # spacing vowel signs (which Python's \w leaves out, so they are added explicitly).
    token = f"(?=\\w)[{per_char}]|(?:[^\\W{per_char}]|[{spacing_bmp}]|{spacing_astral})+"
    return (
        re.compile(f"[{marks_bmp}]+"),
        re.compile(f"{marks_astral}+"),
        re.compile(token),
    )


_MARKS_BMP, _MARKS_ASTRAL, _TOKEN = _build_patterns()
_ASCII_TOKEN = re.compile(r"[a-z0-9_]+")


def fold(text: str) -> str:
    """Normalise ``text`` for comparison: NFKC, case-folded, accents and other marks removed."""
    if text.isascii():
        # NFKC and accent stripping are no-ops on ASCII, and casefold() equals lower() there.
        return text.lower()
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    # NFC after stripping marks recomposes Hangul syllables that NFKD split into jamo.
    return unicodedata.normalize("NFC", _MARKS_ASTRAL.sub("", _MARKS_BMP.sub("", folded)))


def tokenize(text: str) -> list[str]:
    """The folded words of ``text``, in order (see the module docstring for what a word is)."""
    folded = fold(text)
    if folded.isascii():
        return _ASCII_TOKEN.findall(folded)
    return _TOKEN.findall(folded)
