"""X: mentions and recent searches (API v2), replies posted back."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues
from bot.connectors.x.client import REPLY_LIMIT, XCredentials, XSourceConfig
from bot.connectors.x.connector import XSource, signed_in_as
from bot.connectors.x.publisher import XPublisher
from bot.domain.limits import x_weighted_length


def _secrets(config: XSourceConfig) -> tuple[Secret, ...]:
    return (
        Secret(config.api_key_env, "the app's API key"),
        Secret(config.api_secret_env, "the app's API key secret"),
        Secret(config.access_token_env, "the account's access token"),
        Secret(config.access_token_secret_env, "the access token secret"),
        Secret(config.bearer_token_env, "the app's bearer token", required=False),
    )


def _build(config: XSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one client."""
    credentials = XCredentials(
        api_key=secrets[config.api_key_env],
        api_secret=secrets[config.api_secret_env],
        access_token=secrets[config.access_token_env],
        access_token_secret=secrets[config.access_token_secret_env],
        bearer_token=secrets[config.bearer_token_env] or None,
    )
    x = XSource.create(config, credentials)
    publisher = XPublisher(config, x.client, name=f"x:{config.name}")
    return Built(x, publisher, lambda: signed_in_as(x))


CONNECTOR = ConnectorSpec(
    type="x",
    display_name="X",
    config=XSourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=REPLY_LIMIT,
    reply_length=x_weighted_length,
    length_unit="weighted characters (emoji and CJK count 2, a link 23)",
    accent_colour=0x14171A,
)
