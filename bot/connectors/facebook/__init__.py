"""Facebook Pages: comments on the Page's posts (polled, or pushed by Meta's webhook), replies
posted back."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.facebook.connector import (
    REPLY_LIMIT,
    FacebookPublisher,
    FacebookSource,
    FacebookSourceConfig,
)
from bot.connectors.meta.source import signed_in_as, webhook_secrets, webhook_values
from bot.connectors.meta.webhook import APP_SECRET_ENV
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues


def _secrets(config: FacebookSourceConfig) -> tuple[Secret, ...]:
    return (*webhook_secrets(config), Secret(config.token_env, "the long-lived Page access token"))


def _build(config: FacebookSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one Graph client."""
    verify_token, app_secret = webhook_values(config, secrets)
    facebook = FacebookSource.create(
        config, secrets[config.token_env], verify_token=verify_token, app_secret=app_secret
    )
    name = f"facebook:{config.name}"
    publisher = FacebookPublisher(config, facebook.client, name=name)
    return Built(facebook, publisher, lambda: signed_in_as(facebook))


CONNECTOR = ConnectorSpec(
    type="facebook",
    display_name="Facebook",
    config=FacebookSourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=REPLY_LIMIT,
    env_names=(APP_SECRET_ENV,),
    accent_colour=0x1877F2,
)
