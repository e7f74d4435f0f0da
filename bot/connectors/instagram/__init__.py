"""Instagram (professional accounts): comments and @mentions (polled, or pushed by Meta's
webhook), replies posted back."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.instagram.connector import (
    REPLY_LIMIT,
    InstagramPublisher,
    InstagramSource,
    InstagramSourceConfig,
)
from bot.connectors.meta.source import signed_in_as, webhook_secrets, webhook_values
from bot.connectors.meta.webhook import APP_SECRET_ENV
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues


def _secrets(config: InstagramSourceConfig) -> tuple[Secret, ...]:
    token = Secret(config.token_env, "the Instagram account's access token")
    return (*webhook_secrets(config), token)


def _build(config: InstagramSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one Graph client."""
    verify_token, app_secret = webhook_values(config, secrets)
    instagram = InstagramSource.create(
        config, secrets[config.token_env], verify_token=verify_token, app_secret=app_secret
    )
    name = f"instagram:{config.name}"
    publisher = InstagramPublisher(config, instagram.client, name=name)
    return Built(instagram, publisher, lambda: signed_in_as(instagram))


CONNECTOR = ConnectorSpec(
    type="instagram",
    display_name="Instagram",
    config=InstagramSourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=REPLY_LIMIT,
    env_names=(APP_SECRET_ENV,),
    accent_colour=0xE1306C,
)
