"""Builds each source (and, for platforms Parley can post to, its publisher) from its
validated config section. Secrets come from the environment (``.env`` is loaded at start)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bot.config import RssSourceConfig, SourceConfig
from bot.connectors.bluesky import BlueskyPublisher, BlueskySource, BlueskySourceConfig
from bot.connectors.hackernews import HackerNewsSource, HackerNewsSourceConfig
from bot.connectors.mastodon import MastodonPublisher, MastodonSource, MastodonSourceConfig
from bot.connectors.reddit import RedditPublisher, RedditSource, RedditSourceConfig
from bot.connectors.webhook import SECRET_ENV, WebhookSource
from bot.errors import ConfigError
from bot.publishers.base import Publisher
from bot.sources.base import Source
from bot.sources.rss import RssSource


@dataclass
class Built:
    """A source, and the publisher that answers its mentions when the platform allows it
    (sharing the source's client: one session, one rate budget)."""

    source: Source
    publisher: Publisher | None = None


def _secret(config: SourceConfig, variable: str, what: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(
            [f"source {config.name!r} ({config.type}): set {variable} ({what}) in .env"]
        )
    return value


def build_source(config: SourceConfig, *, base_dir: Path | None = None) -> Built:
    """The connector for a config section; relative file paths resolve against ``base_dir``."""
    if isinstance(config, RssSourceConfig):
        if config.path is not None and base_dir is not None and not Path(config.path).is_absolute():
            config = config.model_copy(update={"path": str(base_dir / config.path)})
        return Built(RssSource(config))
    if isinstance(config, MastodonSourceConfig):
        token = _secret(config, config.token_env, "the account's access token")
        mastodon = MastodonSource.create(config, token)
        name = f"mastodon:{config.name}"
        return Built(mastodon, MastodonPublisher(config, mastodon.client, name=name))
    if isinstance(config, BlueskySourceConfig):
        password = _secret(config, config.password_env, "a Bluesky app password")
        bluesky = BlueskySource.create(config, password)
        return Built(bluesky, BlueskyPublisher(bluesky.client, name=f"bluesky:{config.name}"))
    if isinstance(config, RedditSourceConfig):
        reddit = RedditSource.create(
            config,
            client_id=_secret(config, config.client_id_env, "the script app's client id"),
            client_secret=_secret(config, config.client_secret_env, "the app's secret"),
            password=_secret(config, config.password_env, "the account's password"),
        )
        return Built(reddit, RedditPublisher(reddit.client, name=f"reddit:{config.name}"))
    if isinstance(config, HackerNewsSourceConfig):
        return Built(HackerNewsSource(config))
    secret = _secret(config, SECRET_ENV, "the shared signing secret, 16+ characters")
    return Built(WebhookSource(config, secret=secret))
