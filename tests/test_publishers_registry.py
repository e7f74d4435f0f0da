"""Which publisher answers a mention: its source's, else its platform's, else the default."""

from __future__ import annotations

import pytest

from bot.connectors.log import LogPublisher
from bot.connectors.manual import ManualPublisher
from bot.connectors.registry import Publishers
from bot.errors import ConfigError


def test_source_then_platform_then_default() -> None:
    registry = Publishers(
        {"manual": ManualPublisher(), "log": LogPublisher(), "masto-main": LogPublisher()},
        default="log",
        by_platform={"hackernews": "manual"},
        by_source={"masto-main": "masto-main"},
    )
    assert registry.name_for("mastodon", "masto-main") == "masto-main"
    assert registry.name_for("mastodon", "masto-other") == "log"
    assert registry.name_for("hackernews", "hn") == "manual"
    assert registry.name_for("rss") == "log"
    assert registry.get("nonexistent") is registry.get("log")
    # where the platform allows answering only by hand (X posts that did not summon the brand)
    assert registry.name_for("x", "masto-main", answerable=False) == "manual"


def test_the_manual_publisher_is_always_there() -> None:
    registry = Publishers({"log": LogPublisher()}, default="log")
    assert registry.name_for("x", "x-main", answerable=False) == "manual"
    assert isinstance(registry.get("manual"), ManualPublisher)


def test_an_unknown_publisher_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown publisher 'bluesky'"):
        Publishers({"manual": ManualPublisher()}, default="manual", by_source={"b": "bluesky"})
