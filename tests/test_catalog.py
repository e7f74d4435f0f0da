"""The connector catalog: every platform's facts come from its spec, and what is derived from
the list (config union, reply limits, display names, manual routing) says what it said when
those facts were written out by hand."""

from __future__ import annotations

from typing import get_args

import pytest

from bot.config import parse_config
from bot.connectors.catalog import (
    BY_HAND,
    CONNECTORS,
    RELAYS,
    SOURCE_TYPES,
    accent_colour,
    build_source,
    length_unit,
    platform_name,
    reply_limit,
)
from bot.errors import ConfigError

BRANDS = [{"name": "acme", "rules": [{"name": "r", "query": "acme"}]}]


def test_each_spec_tags_its_own_config_model() -> None:
    for spec in CONNECTORS:
        assert get_args(spec.config.model_fields["type"].annotation) == (spec.type,)
    assert SOURCE_TYPES == (
        "rss",
        "mastodon",
        "bluesky",
        "reddit",
        "hackernews",
        "webhook",
        "x",
        "facebook",
        "instagram",
    )


def test_the_config_union_knows_every_connector() -> None:
    config = parse_config(
        {
            "brands": BRANDS,
            "sources": [
                {"type": "rss", "name": "feed", "url": "https://example.com/feed"},
                {"type": "hackernews", "name": "hn", "queries": ["acme"]},
            ],
        },
        "parley.toml",
    )
    assert [type(s).__name__ for s in config.sources] == [
        "RssSourceConfig",
        "HackerNewsSourceConfig",
    ]


@pytest.mark.parametrize(
    ("platform", "limit"),
    [
        ("x", 280),
        ("bluesky", 300),
        ("mastodon", 500),
        ("reddit", 10_000),
        ("instagram", 2_200),
        ("facebook", 8_000),
        ("hackernews", 5_000),
        ("rss", 5_000),
        ("youtube", 5_000),
    ],
)
def test_reply_limits(platform: str, limit: int) -> None:
    assert reply_limit(platform) == limit


def test_mastodon_leaves_room_for_the_mention_it_prepends() -> None:
    assert reply_limit("mastodon", handle="@bob@example.social") == 500 - len("@bob ")
    assert reply_limit("x", handle="@bob") == 280


def test_display_names_and_routing() -> None:
    names = {p: platform_name(p) for p in ("x", "hackernews", "rss", "youtube", "mastodon")}
    assert names == {
        "x": "X",
        "hackernews": "Hacker News",
        "rss": "RSS",
        "youtube": "YouTube",
        "mastodon": "Mastodon",
    }
    assert frozenset({"hackernews"}) == BY_HAND
    assert frozenset({"webhook"}) == RELAYS


def test_length_units_in_the_prompt() -> None:
    units = {p: length_unit(p) for p in ("x", "bluesky", "mastodon", "reddit", "youtube")}
    assert units == {
        "x": "weighted characters (emoji and CJK count 2, a link 23)",
        "bluesky": "characters as a reader sees them (graphemes)",
        "mastodon": "characters (a link counts 23)",
        "reddit": "characters",
        "youtube": "characters",
    }


def test_accent_colours() -> None:
    platforms = (
        *("rss", "web", "mastodon", "bluesky", "reddit", "hackernews", "x", "youtube"),
        *("facebook", "instagram", "discord", "telegram", "webhook", "forum"),
    )
    assert {p: accent_colour(p) for p in platforms} == {
        "rss": 0xF26522,
        "web": 0x607D8B,
        "mastodon": 0x6364FF,
        "bluesky": 0x1185FE,
        "reddit": 0xFF4500,
        "hackernews": 0xFF6600,
        "x": 0x14171A,
        "youtube": 0xFF0000,
        "facebook": 0x1877F2,
        "instagram": 0xE1306C,
        "discord": 0x5865F2,
        "telegram": 0x26A5E4,
        "webhook": None,
        "forum": None,
    }


def test_a_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASTODON_ACCESS_TOKEN", raising=False)
    config = parse_config(
        {
            "brands": BRANDS,
            "sources": [{"type": "mastodon", "name": "m", "base_url": "https://m.example"}],
        },
        "parley.toml",
    )
    with pytest.raises(ConfigError) as caught:
        build_source(config.sources[0])
    assert caught.value.problems == [
        "source 'm' (mastodon): set MASTODON_ACCESS_TOKEN (the account's access token) in .env"
    ]
