"""Hacker News (Algolia search): a source only; Hacker News has no API to reply, so its mentions
are answered by hand."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.hackernews.connector import HackerNewsSource, HackerNewsSourceConfig
from bot.connectors.spec import Built, ConnectorSpec, SecretValues, no_secrets


def _build(config: HackerNewsSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The search source."""
    return Built(HackerNewsSource(config))


CONNECTOR = ConnectorSpec(
    type="hackernews",
    display_name="Hacker News",
    config=HackerNewsSourceConfig,
    secrets=no_secrets,
    build=_build,
    replies_by_hand=True,
    accent_colour=0xFF6600,
)
