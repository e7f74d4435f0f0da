"""The one list of platforms Parley connects to, and what is derived from it: the source types,
the factory that builds a ``[[sources]]`` section's source and publisher, each platform's reply
limit and length and the unit the model is told, its display name and colour, and default
routing.

Adding a platform: write its package under ``bot/connectors/`` exporting a ``CONNECTOR`` spec,
then list it here: its name in the import below and its ``CONNECTOR`` in ``CONNECTORS`` (two
lines; written out, not discovered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.connectors import (
    bluesky,
    facebook,
    hackernews,
    instagram,
    mastodon,
    reddit,
    rss,
    webhook,
    x,
)
from bot.connectors.spec import Built, ConnectorSpec, SourceSection
from bot.domain.limits import DEFAULT_REPLY_LIMIT

CONNECTORS: tuple[ConnectorSpec[Any], ...] = (
    rss.CONNECTOR,
    mastodon.CONNECTOR,
    bluesky.CONNECTOR,
    reddit.CONNECTOR,
    hackernews.CONNECTOR,
    webhook.CONNECTOR,
    x.CONNECTOR,
    facebook.CONNECTOR,
    instagram.CONNECTOR,
)

BY_TYPE: dict[str, ConnectorSpec[Any]] = {spec.type: spec for spec in CONNECTORS}
SOURCE_TYPES = tuple(BY_TYPE)
BY_HAND = frozenset(spec.type for spec in CONNECTORS if spec.replies_by_hand)
"""Platforms whose mentions always go to the manual publisher."""
RELAYS = frozenset(spec.type for spec in CONNECTORS if spec.relays)
"""Source types whose mentions may name another platform (the inbound webhook)."""

RELAYED_PLATFORM_NAMES = {"youtube": "YouTube"}
"""Display names of platforms Parley has no connector for (their mentions come relayed by the
webhook) that a capital letter alone would not write right."""
RELAYED_PLATFORM_COLOURS = {
    "web": 0x607D8B,
    "youtube": 0xFF0000,
    "discord": 0x5865F2,
    "telegram": 0x26A5E4,
}
"""Alert colours of platforms Parley has no connector for (their mentions come relayed)."""


def build_source(config: SourceSection, *, base_dir: Path | None = None) -> Built:
    """The connector for a config section; relative file paths resolve against ``base_dir``.
    A missing secret is a ConfigError saying which variable to set."""
    return BY_TYPE[config.type].create(config, base_dir)


def reply_limit(platform: str, default: int = DEFAULT_REPLY_LIMIT, *, handle: str = "") -> int:
    """The longest reply text the platform accepts, in its own unit (see :func:`reply_length`).

    With the author's ``handle``, the room left once the publisher puts what it must in front
    (Mastodon: ``@acct ``)."""
    spec = BY_TYPE.get(platform)
    if spec is None:
        return default
    limit = default if spec.reply_limit is None else spec.reply_limit
    return limit - len(spec.reply_prefix(handle))


def reply_length(text: str, platform: str) -> int:
    """The length of ``text`` as ``platform`` counts it against :func:`reply_limit`."""
    spec = BY_TYPE.get(platform)
    return len(text) if spec is None else spec.reply_length(text)


def fits(text: str, platform: str, default: int = DEFAULT_REPLY_LIMIT) -> bool:
    """Whether ``text`` is within the platform's limit."""
    return reply_length(text, platform) <= reply_limit(platform, default)


def platform_name(platform: str) -> str:
    """A platform as people write it: 'X', 'Hacker News', 'Mastodon'."""
    spec = BY_TYPE.get(platform)
    if spec is not None:
        return spec.display_name
    return RELAYED_PLATFORM_NAMES.get(platform, platform.capitalize())


def length_unit(platform: str) -> str:
    """The unit of :func:`reply_limit` as the model's prompt names it."""
    spec = BY_TYPE.get(platform)
    return "characters" if spec is None else spec.length_unit


def accent_colour(platform: str) -> int | None:
    """The platform's alert colour (``0xRRGGBB``); None when it has none of its own."""
    spec = BY_TYPE.get(platform)
    if spec is not None:
        return spec.accent_colour
    return RELAYED_PLATFORM_COLOURS.get(platform)
