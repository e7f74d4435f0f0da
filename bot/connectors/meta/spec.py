"""The connector spec Facebook and Instagram share: Meta's webhook secrets and the account's
token, one Graph client for the source and the publisher, and the sign-in check."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.connectors.base import Publisher
from bot.connectors.meta.graph import GraphClient
from bot.connectors.meta.source import (
    MetaSource,
    MetaSourceConfig,
    signed_in_as,
    webhook_secrets,
    webhook_values,
)
from bot.connectors.meta.webhook import APP_SECRET_ENV
from bot.connectors.spec import Built, ConnectorSpec, Secret, SecretValues

ConfigT = TypeVar("ConfigT", bound=MetaSourceConfig)
ConfigT_contra = TypeVar("ConfigT_contra", bound=MetaSourceConfig, contravariant=True)


class PublisherClass(Protocol[ConfigT_contra]):
    """A Meta publisher's class: built on the source's Graph client, under a name."""

    def __call__(self, config: ConfigT_contra, client: GraphClient, *, name: str) -> Publisher:
        """The publisher."""
        ...


def meta_connector(
    *,
    kind: str,
    display_name: str,
    config: type[ConfigT],
    source: type[MetaSource[ConfigT]],
    publisher: PublisherClass[ConfigT],
    token: str,
    reply_limit: int,
    accent_colour: int,
) -> ConnectorSpec[Any]:
    """The spec of a Meta platform (``token`` says what its access token is, for the error a
    missing one gives)."""

    def secrets(section: ConfigT) -> tuple[Secret, ...]:
        return (*webhook_secrets(section), Secret(section.token_env, token))

    def build(section: ConfigT, values: SecretValues, base_dir: Path | None) -> Built:
        """The source and the publisher, sharing one Graph client."""
        verify_token, app_secret = webhook_values(section, values)
        reader = source.create(
            section, values[section.token_env], verify_token=verify_token, app_secret=app_secret
        )
        answers = publisher(section, reader.client, name=f"{kind}:{section.name}")
        return Built(reader, answers, lambda: signed_in_as(reader))

    return ConnectorSpec[Any](
        type=kind,
        display_name=display_name,
        config=config,
        secrets=secrets,
        build=build,
        reply_limit=reply_limit,
        env_names=(APP_SECRET_ENV,),
        accent_colour=accent_colour,
    )
