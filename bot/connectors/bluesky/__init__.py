"""Bluesky: mention, reply and quote notifications, replies posted back."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.bluesky.connector import (
    REPLY_LIMIT,
    BlueskyPublisher,
    BlueskySource,
    BlueskySourceConfig,
    signed_in_as,
)
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues
from bot.domain.limits import grapheme_count


def _secrets(config: BlueskySourceConfig) -> tuple[Secret, ...]:
    return (Secret(config.password_env, "a Bluesky app password"),)


def _build(config: BlueskySourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one session."""
    bluesky = BlueskySource.create(config, secrets[config.password_env])
    publisher = BlueskyPublisher(bluesky.client, name=f"bluesky:{config.name}")
    return Built(bluesky, publisher, lambda: signed_in_as(bluesky))


CONNECTOR = ConnectorSpec(
    type="bluesky",
    display_name="Bluesky",
    config=BlueskySourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=REPLY_LIMIT,
    reply_length=grapheme_count,
    length_unit="characters as a reader sees them (graphemes)",
    accent_colour=0x1185FE,
)
