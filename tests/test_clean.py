"""clean_text: untrusted text becomes safe, bounded plain text."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from bot.connectors.clean import clean_text
from bot.domain.models import MAX_TEXT_CHARS


def test_html_becomes_text_with_entities_decoded() -> None:
    html = "Samuel Bell, to the <b>new</b> State House ... <b>Philip Dick</b>,&nbsp;..."
    assert clean_text(html, html=True) == "Samuel Bell, to the new State House ... Philip Dick, ..."


def test_block_elements_become_line_breaks_and_scripts_vanish() -> None:
    html = (
        "<p>First  paragraph</p><p>Second<br/>line</p><script>alert('x')</script>"
        "<style>p{}</style><ul><li>one</li><li>two &amp; three</li></ul>"
    )
    assert clean_text(html, html=True) == "First paragraph\n\nSecond\nline\n\none\ntwo & three"


def test_image_alt_text_is_kept() -> None:
    assert clean_text('Great job <img src="x.png" alt="🎉"> team', html=True) == "Great job 🎉 team"


def test_plain_text_is_not_parsed_as_html() -> None:
    assert clean_text("a <b> c &amp; d") == "a <b> c &amp; d"


def test_escaped_markup_stays_text() -> None:
    assert clean_text("&lt;script&gt;x&lt;/script&gt;", html=True) == "<script>x</script>"


def test_control_characters_are_removed_but_newlines_and_tabs_kept_as_space() -> None:
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x9f f\tg\r\nh") == "abcde f g\nh"


def test_bidi_overrides_and_bom_are_removed() -> None:
    assert clean_text("\ufeffuser\u202egnp.exe\u2066x\u2069") == "usergnp.exex"


def test_lone_surrogates_become_replacement_characters() -> None:
    result = clean_text("bad \ud83d pair")
    assert result == "bad \ufffd pair"
    result.encode("utf-8")  # encodable: no surrogate survived


def test_nfc_normalisation() -> None:
    decomposed = "Cafe\u0301"
    assert clean_text(decomposed) == "Café"
    assert unicodedata.is_normalized("NFC", clean_text(decomposed))


def test_whitespace_runs_collapse_and_blank_lines_are_limited() -> None:
    assert clean_text("  a \u00a0\u2003 b\n\n\n\n  c  \n d  ") == "a b\n\nc\nd"


def test_cap_adds_an_ellipsis_within_the_limit() -> None:
    result = clean_text("word " * 100, limit=20)
    assert len(result) <= 20
    assert result.endswith("…")
    assert result == "word word word word…"


def test_ten_megabyte_input_is_capped_quickly() -> None:
    huge = "<p>" + "Acme is down again &amp; again. " * 330_000 + "</p>"
    result = clean_text(huge, html=True)
    assert len(result) == MAX_TEXT_CHARS
    assert result.startswith("Acme is down again & again.")
    assert result.endswith("…")


@given(st.text())
def test_never_raises_and_output_is_safe(value: str) -> None:
    for html in (False, True):
        result = clean_text(value, html=html, limit=500)
        assert len(result) <= 500
        result.encode("utf-8")
        assert not any(ord(c) < 0x20 and c != "\n" for c in result)
        assert result == result.strip()
