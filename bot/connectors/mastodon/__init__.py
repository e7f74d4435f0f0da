"""Mastodon: mentions, hashtags and searches (polled, or streamed), replies posted back."""

from __future__ import annotations

from pathlib import Path

from bot.connectors.mastodon.api import REPLY_LIMIT, MastodonSourceConfig
from bot.connectors.mastodon.connector import MastodonPublisher, MastodonSource, signed_in_as
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues
from bot.domain.limits import link_weighted_length


def _secrets(config: MastodonSourceConfig) -> tuple[Secret, ...]:
    return (Secret(config.token_env, "the account's access token"),)


def _build(config: MastodonSourceConfig, secrets: SecretValues, base_dir: Path | None) -> Built:
    """The source and the publisher, sharing one client."""
    mastodon = MastodonSource.create(config, secrets[config.token_env])
    name = f"mastodon:{config.name}"
    publisher = MastodonPublisher(config, mastodon.client, name=name)
    return Built(mastodon, publisher, lambda: signed_in_as(mastodon))


def _mention_prefix(handle: str) -> str:
    """The ``@acct `` the publisher puts in front (``@user@domain`` counts as ``@user``)."""
    acct = handle.strip("@")
    return "@" + acct.split("@")[0] + " " if acct else ""


CONNECTOR = ConnectorSpec(
    type="mastodon",
    display_name="Mastodon",
    config=MastodonSourceConfig,
    secrets=_secrets,
    build=_build,
    reply_limit=REPLY_LIMIT,
    reply_length=link_weighted_length,
    reply_prefix=_mention_prefix,
    length_unit="characters (a link counts 23)",
    accent_colour=0x6364FF,
)
