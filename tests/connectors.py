"""Connector configurations, sources and publishers pointed at the loopback fakes, for the tests
of more than one module (each allows private addresses: the fakes are on loopback)."""

from __future__ import annotations

from typing import Any

from bot.connectors.facebook.connector import FacebookSourceConfig
from bot.connectors.instagram.connector import InstagramSourceConfig
from bot.connectors.mastodon.api import MastodonClient, MastodonSourceConfig
from bot.connectors.mastodon.connector import MastodonPublisher, MastodonSource
from fakes.graph import IG_USER_ID, PAGE_ID, VERSION
from fakes.mastodon import TOKEN


def facebook_config(url: str, **overrides: Any) -> FacebookSourceConfig:
    """A Facebook Page source on the fake Graph API at ``url``."""
    values: dict[str, Any] = {
        "type": "facebook",
        "name": "fb",
        "page_id": PAGE_ID,
        "base_url": url,
        "allow_private": True,  # the fake server is on loopback
        "api_version": VERSION,
        "page_size": 5,
        **overrides,
    }
    return FacebookSourceConfig.model_validate(values)


def instagram_config(url: str, **overrides: Any) -> InstagramSourceConfig:
    """An Instagram source on the fake Graph API at ``url``."""
    values: dict[str, Any] = {
        "type": "instagram",
        "name": "ig",
        "ig_user_id": IG_USER_ID,
        "base_url": url,
        "allow_private": True,  # the fake server is on loopback
        "api_version": VERSION,
        "page_size": 5,
        **overrides,
    }
    return InstagramSourceConfig.model_validate(values)


def mastodon_config(base_url: str, **overrides: Any) -> MastodonSourceConfig:
    """A Mastodon source on the fake instance at ``base_url``."""
    values: dict[str, Any] = {
        "type": "mastodon",
        "name": "masto",
        "base_url": base_url,
        "allow_private": True,  # the fake server is on loopback
    }
    values.update(overrides)
    return MastodonSourceConfig.model_validate(values)


def mastodon_source(base_url: str, **overrides: Any) -> MastodonSource:
    """A Mastodon source on the fake instance, with its token."""
    return MastodonSource.create(mastodon_config(base_url, **overrides), TOKEN)


def mastodon_publisher(
    base_url: str, *, timeout: float = 5.0, **overrides: Any
) -> MastodonPublisher:
    """A Mastodon publisher on the fake instance, with its own client."""
    cfg = mastodon_config(base_url, timeout=timeout, **overrides)
    return MastodonPublisher(
        cfg, MastodonClient(cfg.base_url, TOKEN, timeout=timeout, allow_private=True)
    )
