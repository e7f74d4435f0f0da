"""Reddit: inbox mentions and subreddit searches, replies posted back as comments."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.reddit.connector import (
    MAX_COMMENT_CHARS,
    RedditPublisher,
    RedditSource,
    RedditSourceConfig,
    signed_in_as,
)
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues


def _secrets(config: RedditSourceConfig) -> tuple[Secret, ...]:
    return (
        Secret(config.client_id_env, "the script app's client id"),
        Secret(config.client_secret_env, "the app's secret"),
        Secret(config.password_env, "the account's password"),
    )


def _build(config: RedditSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one client."""
    reddit = RedditSource.create(
        config,
        client_id=secrets[config.client_id_env],
        client_secret=secrets[config.client_secret_env],
        password=secrets[config.password_env],
    )
    publisher = RedditPublisher(reddit.client, name=f"reddit:{config.name}")
    return Built(reddit, publisher, lambda: signed_in_as(reddit))


CONNECTOR = ConnectorSpec(
    type="reddit",
    display_name="Reddit",
    config=RedditSourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=MAX_COMMENT_CHARS,
    accent_colour=0xFF4500,
)
