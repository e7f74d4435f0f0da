"""canonical_url: one spelling per link; garbage in, None out."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.pipeline.canonical import canonical_url

FIXTURES = Path(__file__).parent / "fixtures"


def test_google_alerts_link_is_unwrapped() -> None:
    feed = feedparser.parse((FIXTURES / "google_alerts_feed.xml").read_bytes())
    link = feed.entries[0].link
    assert link.startswith("https://www.google.com/url?")
    assert canonical_url(link) == (
        "https://theconcordinsider.com/2021/06/04/this-week-in-concord-history-502"
    )


SAFELINK = "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fexample.com%2Fe&d=1"
NESTED = (
    "https://www.google.com/url?q=https%3A%2F%2Fl.facebook.com%2Fl.php%3Fu%3D"
    "https%253A%252F%252Fexample.com%252Fg"
)


@pytest.mark.parametrize(
    ("wrapped", "expected"),
    [
        ("https://www.google.com/url?q=https://example.com/a&sa=D&ust=1", "https://example.com/a"),
        ("https://google.co.uk/url?url=https%3A%2F%2Fexample.com%2Fb%3Fx%3D1", "https://example.com/b?x=1"),
        ("https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com%2Fc%3Ffbclid%3Dabc&h=AT0", "https://example.com/c"),
        ("https://www.youtube.com/redirect?event=video&q=https%3A%2F%2Fexample.com%2Fd", "https://example.com/d"),
        (SAFELINK, "https://example.com/e"),
        ("https://out.reddit.com/t3_abc?url=https%3A%2F%2Fexample.com%2Ff&token=x", "https://example.com/f"),
        (NESTED, "https://example.com/g"),  # a wrapper around a wrapper
    ],
)  # fmt: skip
def test_redirect_wrappers_are_unwrapped(wrapped: str, expected: str) -> None:
    assert canonical_url(wrapped) == expected


def test_wrapper_without_a_target_is_kept_as_a_link() -> None:
    assert canonical_url("https://www.google.com/url?q=javascript:alert(1)") == (
        "https://google.com/url?q=javascript:alert(1)"
    )
    assert canonical_url("https://www.google.com/search?q=https://example.com") == (
        "https://google.com/search?q=https://example.com"
    )


def test_scheme_host_port_fragment_and_trailing_slash() -> None:
    assert canonical_url("HTTPS://WWW.Example.COM:443/News/Item/#comments") == (
        "https://example.com/News/Item"
    )
    assert canonical_url("http://example.com:80") == "http://example.com/"
    assert canonical_url("http://example.com:8080/") == "http://example.com:8080/"
    assert canonical_url("https://example.com./a") == "https://example.com/a"


def test_http_and_https_stay_distinct_but_www_does_not_matter() -> None:
    assert canonical_url("http://example.com/a") == "http://example.com/a"
    assert canonical_url("https://www.example.com/a") == canonical_url("https://example.com/a")
    assert canonical_url("https://www.com/") == "https://www.com/"  # "www" is the domain here


def test_tracking_parameters_are_removed_and_the_rest_sorted() -> None:
    url = (
        "https://shop.example.com/p?utm_source=x&b=2&UTM_Campaign=y&a=1&fbclid=f&gclid=g"
        "&mc_cid=m&mc_eid=e&igshid=i&ref_src=twsrc&si=abc&a=0&_hsenc=h"
    )
    assert canonical_url(url) == "https://shop.example.com/p?a=1&a=0&b=2"
    assert canonical_url("https://example.com/p?utm_medium=rss") == "https://example.com/p"


def test_share_parameters_of_x_are_dropped_only_there() -> None:
    assert canonical_url("https://x.com/acme/status/1?s=20&t=abc") == "https://x.com/acme/status/1"
    assert canonical_url("https://example.com/search?t=10&s=shoes") == (
        "https://example.com/search?s=shoes&t=10"
    )


def test_percent_encoding_and_dot_segments_are_normalised() -> None:
    assert canonical_url("https://example.com/a/./b/../%7euser/%2fx%3a") == (
        "https://example.com/a/~user/%2Fx%3A"
    )
    assert canonical_url("https://bücher.de/päth?q=ä") == (
        "https://xn--bcher-kva.de/p%C3%A4th?q=%C3%A4"
    )
    assert canonical_url("https://example.com/a b") == "https://example.com/a%20b"


def test_user_info_is_dropped_and_ipv6_kept() -> None:
    assert canonical_url("https://user:secret@example.com/x") == "https://example.com/x"
    assert canonical_url("http://[::1]:80/x/") == "http://[::1]/x"


@pytest.mark.parametrize(
    "garbage",
    [
        None, "", "   ", "ftp://example.com/x", "javascript:alert(1)", "mailto:a@b.c", "/relative",
        "example.com/no-scheme", "https://", "http://[bad", "https://exa mple.com/", "https://a..b/",
        "https://example.com:99999/", "https://example.com:port/", "https://ex\x00ample.com/",
        "https://" + "a" * 10_000 + ".com",
    ],
)  # fmt: skip
def test_garbage_gives_none(garbage: str | None) -> None:
    assert canonical_url(garbage) is None


@given(st.text())
def test_never_raises(value: str) -> None:
    canonical_url(value)
    canonical_url("https://example.com/" + value)
    canonical_url("https://www.google.com/url?q=" + value)


@given(
    st.from_regex(
        r"https?://[a-z]{1,10}\.(com|org)(/[a-zA-Z0-9._~%-]{0,10}){0,3}(\?[a-z]=[0-9])?",
        fullmatch=True,
    )
)
def test_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert once is not None
    assert canonical_url(once) == once
