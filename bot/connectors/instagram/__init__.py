"""Instagram (professional accounts): comments and @mentions (polled, or pushed by Meta's
webhook), replies posted back."""

from __future__ import annotations

from bot.connectors.instagram.connector import (
    REPLY_LIMIT,
    InstagramPublisher,
    InstagramSource,
    InstagramSourceConfig,
)
from bot.connectors.meta.spec import meta_connector

CONNECTOR = meta_connector(
    kind="instagram",
    display_name="Instagram",
    config=InstagramSourceConfig,
    source=InstagramSource,
    publisher=InstagramPublisher,
    token="the Instagram account's access token",
    reply_limit=REPLY_LIMIT,
    accent_colour=0xE1306C,
)
