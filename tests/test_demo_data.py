"""The bundled demo data: feeds in real wire formats, the special items, valid configs."""

from __future__ import annotations

import html
import re
import tomllib
from calendar import timegm
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import feedparser
import pytest

from bot.config import parse_config
from bot.connectors.rss.connector import RssSourceConfig
from bot.matching.intent import classify_intent

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "bot" / "demo"
FEEDS = ("google_alerts.xml", "reddit.xml", "mastodon.xml")


def parsed(name: str) -> Any:
    result = feedparser.parse((DEMO / "feeds" / name).read_bytes())
    assert not result.bozo, (name, result.get("bozo_exception"))
    return result


def plain(markup: str) -> str:
    """What a reader sees: tags dropped, then entities decoded (so escaped markup survives)."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def text_of(entry: Any) -> str:
    body = entry["content"][0]["value"] if "content" in entry else entry.get("summary", "")
    return plain(entry.get("title", "")) + "\n" + plain(body)


def language_of(entry: Any, feed: Any) -> str | None:
    detail = entry.get("title_detail") or entry.get("summary_detail") or {}
    lang: str | None = entry.get("language") or detail.get("language") or feed.feed.get("language")
    return lang


def without_tracking(url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("utm_"))
    return urlunsplit(parts._replace(query=query))


@pytest.fixture(scope="module")
def entries() -> list[tuple[str, Any, Any]]:
    out = []
    for name in FEEDS:
        feed = parsed(name)
        out += [(name, entry, feed) for entry in feed.entries]
    return out


def test_at_least_thirty_mentions(entries: list[tuple[str, Any, Any]]) -> None:
    assert len(entries) >= 30
    for name in FEEDS:
        assert sum(1 for n, _, _ in entries if n == name) >= 10


def test_google_alerts_format() -> None:
    feed = parsed("google_alerts.xml")
    assert feed.version == "atom10"
    for entry in feed.entries:
        assert entry.id.startswith("tag:google.com,2013:googlealerts/feed:")
        link = urlsplit(entry.link)
        assert (link.netloc, link.path) == ("www.google.com", "/url")
        real = parse_qs(link.query)["url"][0]
        assert real.startswith("https://")
        assert entry.author == ""
        assert entry.title_detail.type == "text/html"
        assert "<b>" in entry.title + entry.content[0].value


def test_reddit_format() -> None:
    feed = parsed("reddit.xml")
    assert feed.version == "atom10"
    for entry in feed.entries:
        assert re.fullmatch(r"t3_[a-z0-9]+", entry.id)
        assert entry.author.startswith("/u/")
        assert entry.author_detail.href == "https://www.reddit.com/user/" + entry.author[3:]
        assert re.match(r"https://www\.reddit\.com/r/\w+/comments/[a-z0-9]+/\w+/$", entry.link)
        assert entry.content[0].type == "text/html"
        assert "submitted by" in entry.content[0].value


def test_mastodon_format() -> None:
    feed = parsed("mastodon.xml")
    assert feed.version == "rss20"
    assert feed.feed.language == "en"
    for entry in feed.entries:
        assert entry.id == entry.link
        assert re.match(r"https://[\w.]+/@\w+/\d+$", entry.link)
        assert entry.summary.startswith("<p>")
        assert entry.published_parsed is not None


def test_timestamps_span_a_few_days_in_november_2026(entries: list[tuple[str, Any, Any]]) -> None:
    times = [
        datetime.fromtimestamp(timegm(entry.get("published_parsed") or entry.updated_parsed), UTC)
        for _, entry, _ in entries
    ]
    assert min(times) >= datetime(2026, 11, 16, tzinfo=UTC)
    assert max(times) < datetime(2026, 11, 20, tzinfo=UTC)


def test_languages(entries: list[tuple[str, Any, Any]]) -> None:
    langs = [language_of(entry, feed) for _, entry, feed in entries]
    for lang in ("fr", "es", "de"):
        assert langs.count(lang) >= 2, lang
    # Feedparser exposes them per entry: Atom xml:lang in title_detail, RSS dc:language as
    # entry.language.
    mastodon = parsed("mastodon.xml")
    assert {e.get("language") for e in mastodon.entries} >= {"fr", "es", "de"}


def test_exactly_one_prompt_injection(entries: list[tuple[str, Any, Any]]) -> None:
    hits = [e for _, e, _ in entries if "ignore all previous instructions" in text_of(e).lower()]
    assert len(hits) == 1
    assert "admin password" in text_of(hits[0])
    assert "Nimbus is a scam" in text_of(hits[0])


def test_exactly_one_item_full_of_pings_and_markup(entries: list[tuple[str, Any, Any]]) -> None:
    hits = [e for _, e, _ in entries if "@everyone" in text_of(e)]
    assert len(hits) == 1
    text = text_of(hits[0])
    for needle in ("@here", "<@&123456>", "**URGENT**", "||again||", "`rm -rf", "<b>Fix it</b>"):
        assert needle in text
    assert '<a href="https://free-pro.example/claim">' in text
    assert "Tom &amp; Jerry" in text


def test_same_article_with_different_tracking(entries: list[tuple[str, Any, Any]]) -> None:
    urls = []
    for name, entry, _ in entries:
        if name == "google_alerts.xml":
            urls.append(parse_qs(urlsplit(entry.link).query)["url"][0])
        elif name == "reddit.xml":
            urls += re.findall(r'href="([^"]+)">\[link\]', entry.content[0].value)
    article = "https://news.techwire.example/2026/11/16/nimbus-labs-series-a/"
    copies = [html.unescape(u) for u in urls if without_tracking(html.unescape(u)) == article]
    assert len(copies) == 3
    assert len(set(copies)) == 3  # each with its own utm_* parameters


def test_near_identical_repost() -> None:
    texts = [plain(e.summary).strip() for e in parsed("mastodon.xml").entries]
    reposts = [t for t in texts if t.startswith("RT @")]
    assert len(reposts) == 1
    original = reposts[0].split(":", 1)[1].strip()
    assert original in texts


def test_homonyms_present(entries: list[tuple[str, Any, Any]]) -> None:
    texts = [text_of(e).lower() for _, e, _ in entries]
    assert sum("nimbus 2000" in t for t in texts) >= 2
    assert sum("nimbus clouds" in t for t in texts) >= 3


def test_intent_mix(entries: list[tuple[str, Any, Any]]) -> None:
    intents = [classify_intent(text_of(e)) for _, e, _ in entries]
    assert intents.count("complaint") >= 8
    assert intents.count("question") >= 4
    assert intents.count("praise") >= 4
    assert intents.count("other") >= 6


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def test_demo_config_validates() -> None:
    config = parse_config(load(DEMO / "parley.demo.toml"), "parley.demo.toml")
    [brand] = config.brands
    assert (brand.name, brand.display_name) == ("nimbus", "Nimbus Notes")
    assert brand.signature == "— Sam from Nimbus"
    assert brand.voice_file is not None
    assert (ROOT / "prompts" / brand.voice_file).is_file()
    assert any(rule.urgent for rule in brand.rules)
    assert any("lang:fr" in rule.query for rule in brand.rules)
    sources = [s for s in config.sources if isinstance(s, RssSourceConfig)]
    assert len(sources) == len(config.sources)
    assert sorted(s.path or "" for s in sources) == sorted(f"feeds/{n}" for n in FEEDS)
    for source in sources:
        assert (DEMO / (source.path or "")).is_file()


def test_example_config_validates() -> None:
    config = parse_config(load(ROOT / "parley.example.toml"), "parley.example.toml")
    assert len(config.brands) == 2
    sources = [s for s in config.sources if isinstance(s, RssSourceConfig)]
    assert len(sources) == len(config.sources)
    assert {s.url is None for s in sources} == {True, False}
