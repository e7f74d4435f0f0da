"""Builds each source (and, for platforms Parley can post to, its publisher) from its
validated config section. Secrets come from the environment (``.env`` is loaded at start)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bot.config import RssSourceConfig, SourceConfig
from bot.connectors.bluesky.connector import BlueskyPublisher, BlueskySource, BlueskySourceConfig
from bot.connectors.facebook.connector import FacebookPublisher, FacebookSource, FacebookSourceConfig
from bot.connectors.hackernews.connector import HackerNewsSource, HackerNewsSourceConfig
from bot.connectors.instagram.connector import InstagramPublisher, InstagramSource, InstagramSourceConfig
from bot.connectors.mastodon.connector import MastodonPublisher, MastodonSource, MastodonSourceConfig
from bot.connectors.meta.webhook import APP_SECRET_ENV
from bot.connectors.reddit.connector import RedditPublisher, RedditSource, RedditSourceConfig
from bot.connectors.webhook.connector import SECRET_ENV, WebhookSource
from bot.connectors.x.connector import XCredentials, XPublisher, XSource, XSourceConfig
from bot.errors import ConfigError
from bot.connectors.base import Publisher
from bot.connectors.base import Source
from bot.connectors.rss.connector import RssSource


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
    if isinstance(config, XSourceConfig):
        credentials = XCredentials(
            api_key=_secret(config, config.api_key_env, "the app's API key"),
            api_secret=_secret(config, config.api_secret_env, "the app's API key secret"),
            access_token=_secret(config, config.access_token_env, "the account's access token"),
            access_token_secret=_secret(
                config, config.access_token_secret_env, "the access token secret"
            ),
            bearer_token=os.environ.get(config.bearer_token_env, "").strip() or None,
        )
        x = XSource.create(config, credentials)
        return Built(x, XPublisher(config, x.client, name=f"x:{config.name}"))
    if isinstance(config, FacebookSourceConfig):
        verify_token, app_secret = _meta_webhook_secrets(config)
        facebook = FacebookSource.create(
            config,
            _secret(config, config.token_env, "the long-lived Page access token"),
            verify_token=verify_token,
            app_secret=app_secret,
        )
        name = f"facebook:{config.name}"
        return Built(facebook, FacebookPublisher(config, facebook.client, name=name))
    if isinstance(config, InstagramSourceConfig):
        verify_token, app_secret = _meta_webhook_secrets(config)
        instagram = InstagramSource.create(
            config,
            _secret(config, config.token_env, "the Instagram account's access token"),
            verify_token=verify_token,
            app_secret=app_secret,
        )
        name = f"instagram:{config.name}"
        return Built(instagram, InstagramPublisher(config, instagram.client, name=name))
    secret = _secret(config, SECRET_ENV, "the shared signing secret, 16+ characters")
    return Built(WebhookSource(config, secret=secret))


def _meta_webhook_secrets(config: FacebookSourceConfig | InstagramSourceConfig) -> tuple[str, str]:
    """The webhook's verify token and the App Secret: both required with a webhook; without
    one, the App Secret is optional (it signs calls with ``appsecret_proof``)."""
    if config.webhook is None:
        return "", os.environ.get(APP_SECRET_ENV, "").strip()
    return (
        _secret(config, config.webhook.verify_token_env, "the webhook verify token"),
        _secret(config, config.webhook.app_secret_env, "the Meta app's App Secret"),
    )
