"""parley.toml source sections of every type build their connector, and the platforms Parley
can post to get their own publisher; a missing secret is one clear line."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import build_core
from bot.config import parse_config
from bot.errors import ConfigError
from bot.settings import Settings
from tests.conftest import BASIC_CONFIG

SOURCES: list[dict[str, Any]] = [
    {"type": "mastodon", "name": "masto", "base_url": "http://127.0.0.1:9"},
    {"type": "bluesky", "name": "bsky", "identifier": "acme.bsky.social",
     "base_url": "http://127.0.0.1:9"},
    {"type": "reddit", "name": "rd", "username": "acme_support", "subreddits": ["acme"],
     "base_url": "http://127.0.0.1:9", "auth_url": "http://127.0.0.1:9"},
    {"type": "hackernews", "name": "hn", "queries": ["acme"], "base_url": "http://127.0.0.1:9"},
    {"type": "webhook", "name": "inbox", "port": 0},
    {"type": "x", "name": "xsrc", "user_id": "42", "username": "acme",
     "base_url": "http://127.0.0.1:9"},
    {"type": "facebook", "name": "fb", "page_id": "1001", "base_url": "http://127.0.0.1:9"},
    {"type": "instagram", "name": "ig", "ig_user_id": "1002", "base_url": "http://127.0.0.1:9"},
]  # fmt: skip

SECRETS = {
    "MASTODON_ACCESS_TOKEN": "masto-token",
    "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
    "REDDIT_CLIENT_ID": "id",
    "REDDIT_CLIENT_SECRET": "secret",
    "REDDIT_PASSWORD": "pw",
    "PARLEY_WEBHOOK_SECRET": "a-long-shared-secret-0123456789",
    "X_API_KEY": "k",
    "X_API_SECRET": "s",
    "X_ACCESS_TOKEN": "t",
    "X_ACCESS_TOKEN_SECRET": "ts",
    "META_PAGE_ACCESS_TOKEN": "page-token",
    "META_IG_ACCESS_TOKEN": "ig-token",
}


async def test_every_source_type_builds_with_its_publisher(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    config = parse_config({**BASIC_CONFIG, "sources": SOURCES}, "test.toml")
    async with build_core(settings, config) as core:
        assert [type(r.source).__name__ for r in core.runners] == [
            "MastodonSource", "BlueskySource", "RedditSource", "HackerNewsSource", "WebhookSource",
            "XSource", "FacebookSource", "InstagramSource",
        ]  # fmt: skip
        publishers = core.review.publishers
        assert publishers.name_for("mastodon", "masto") == "mastodon:masto"
        assert publishers.name_for("bluesky", "bsky") == "bluesky:bsky"
        assert publishers.name_for("reddit", "rd") == "reddit:rd"
        assert publishers.name_for("hackernews", "hn") == "manual"
        assert publishers.name_for("x", "xsrc") == "x:xsrc"
        assert publishers.name_for("x", "xsrc", answerable=False) == "manual"
        assert publishers.name_for("facebook", "fb") == "facebook:fb"
        assert publishers.name_for("instagram", "ig") == "instagram:ig"
        assert publishers.name_for("webhook", "inbox") == "log"  # the settings' default
        # a webhook item naming a platform Parley has a connector for is answered there
        assert publishers.name_for("bluesky", "inbox") == "bluesky:bsky"
        assert publishers.name_for("mastodon", "inbox") == "mastodon:masto"
        assert publishers.name_for("mastodon", "hn") == "log"  # only relays are redirected


async def test_webhook_items_go_to_the_default_when_two_connectors_could_answer(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    second = {**SOURCES[0], "name": "masto2"}
    config = parse_config(
        {**BASIC_CONFIG, "sources": [SOURCES[0], second, SOURCES[4]]}, "test.toml"
    )
    async with build_core(settings, config) as core:
        assert core.review.publishers.name_for("mastodon", "inbox") == "log"


async def test_a_missing_secret_names_the_variable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MASTODON_ACCESS_TOKEN", raising=False)
    config = parse_config({**BASIC_CONFIG, "sources": SOURCES[:1]}, "test.toml")
    with pytest.raises(ConfigError) as caught:
        async with build_core(settings, config):
            pass
    assert caught.value.problems == [
        "source 'masto' (mastodon): set MASTODON_ACCESS_TOKEN (the account's access token) in .env"
    ]


def test_unknown_source_type_lists_every_known_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASIC_CONFIG, "sources": [{"type": "myspace", "name": "m"}]}, "t.toml")
    assert caught.value.problems == [
        "t.toml: sources[0]: unknown source type 'myspace' "
        "(known: rss, mastodon, bluesky, reddit, hackernews, webhook, x, facebook, instagram)"
    ]
