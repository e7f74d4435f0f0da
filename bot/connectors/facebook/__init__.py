"""Facebook Pages: comments on the Page's posts (polled, or pushed by Meta's webhook), replies
posted back."""

from __future__ import annotations

from bot.connectors.facebook.connector import (
    REPLY_LIMIT,
    FacebookPublisher,
    FacebookSource,
    FacebookSourceConfig,
)
from bot.connectors.meta.spec import meta_connector

CONNECTOR = meta_connector(
    kind="facebook",
    display_name="Facebook",
    config=FacebookSourceConfig,
    source=FacebookSource,
    publisher=FacebookPublisher,
    token="the long-lived Page access token",
    reply_limit=REPLY_LIMIT,
    accent_colour=0x1877F2,
)
