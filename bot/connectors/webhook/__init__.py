"""The inbound webhook: mentions pushed by any tool that signs its requests (Zapier, n8n, a
script), relayed from platforms Parley has no connector for, or from one it has."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues
from bot.connectors.webhook.connector import SECRET_ENV, WebhookSource, WebhookSourceConfig

_SECRET = Secret(SECRET_ENV, "the shared signing secret, 16+ characters")


def _secrets(config: WebhookSourceConfig) -> tuple[Secret, ...]:
    return (_SECRET,)


def _build(config: WebhookSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The endpoint's source."""
    return Built(WebhookSource(config, secret=secrets[SECRET_ENV]))


CONNECTOR = ConnectorSpec(
    type="webhook",
    display_name="Webhook",
    config=WebhookSourceConfig,
    secrets=_secrets,
    build=_build,
    relays=True,
    env_names=(SECRET_ENV,),
)
