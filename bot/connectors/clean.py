"""Turns untrusted text (feed HTML, API strings, raw bytes) into safe, bounded plain text.

Every item passes through here, so the common case (short text, nothing to fix) takes fast paths.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from html.parser import HTMLParser

from bot.domain.models import MAX_TEXT_CHARS

ELLIPSIS = "…"

# Input beyond this many times the limit is never looked at: it could only show if it were almost
# all markup or whitespace, and parsing it would make one hostile item cost seconds.
_INPUT_FACTOR = 8


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in [*range(0x00, 0x20), *range(0x7F, 0xA0)]:
        table[cp] = None  # C0 and C1 controls
    table[ord("\t")] = "\t"
    table[ord("\n")] = "\n"
    table[ord("\r")] = "\n"
    table[0x0B] = table[0x0C] = table[0x85] = "\n"  # VT, FF, NEL separate lines
    table[0x2028] = table[0x2029] = "\n"  # line / paragraph separators
    table[0xFEFF] = None  # byte-order mark / zero-width no-break space
    # Bidi embeddings, overrides and isolates: in a chat alert an unbalanced one reorders the
    # text around it (author names, links), a known spoofing trick. Marks (LRM/RLM) are kept.
    for cp in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[cp] = None
    for cp in range(0xD800, 0xE000):
        table[cp] = "\ufffd"  # a lone surrogate cannot be encoded to UTF-8 (SQLite, chat APIs)
    return table


_TABLE = _build_table()
_NEEDS_TRANSLATE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_HSPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NL = re.compile(r" ?\n ?")
_MANY_NL = re.compile(r"\n{3,}")

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
        "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_ITEM_TAGS = frozenset({"br", "dd", "dt", "li", "td", "th", "tr"})
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "img":
            # An image's alt text is what a reader would see (often an emoji on social sites).
            alt = next((v for k, v in attrs if k == "alt" and v), None)
            if alt and not self._skipping:
                self.parts.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIP_TAGS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS and tag not in _ITEM_TAGS:
            self.parts.append("\n")  # a paragraph ends with a blank line, a list item does not

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """The visible text of an HTML fragment, entities decoded (not otherwise cleaned)."""
    if "<" not in value:
        return unescape(value) if "&" in value else value
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    return "".join(parser.parts)


def clean_text(value: str, *, html: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    """Safe plain text: tags stripped (``html=True``), controls removed, NFC, spaces collapsed.

    Newlines survive (at most one blank line in a row); other whitespace runs become one space.
    Text longer than ``limit`` characters is cut and ends with "…".
    """
    if len(value) > limit * _INPUT_FACTOR:
        value = value[: limit * _INPUT_FACTOR]
    if html:
        value = html_to_text(value)
    if "\r" in value:
        value = value.replace("\r\n", "\n")
    if _NEEDS_TRANSLATE.search(value):
        value = value.translate(_TABLE)
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    value = _HSPACE.sub(" ", value)
    if "\n" in value:
        value = _MANY_NL.sub("\n\n", _SPACE_AROUND_NL.sub("\n", value))
    value = value.strip()
    if len(value) > limit:
        value = value[: max(0, limit - 1)].rstrip() + ELLIPSIS
    return value
