"""Online check of each source's credentials, through the connector's own client: Mastodon
``verify_credentials``, Bluesky ``createSession``, Reddit ``/api/v1/me``, X ``/2/users/me``,
Facebook and Instagram Graph ``/me``. Sources without credentials (RSS, Hacker News, webhooks)
are not checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bot.config import SourceConfig
from bot.connectors.bluesky.connector import BlueskySource
from bot.connectors.catalog import build_source
from bot.connectors.mastodon.api import source_message, token_rejected
from bot.connectors.mastodon.connector import MastodonSource
from bot.connectors.meta.graph import GraphApiError, source_error
from bot.connectors.meta.source import MetaSource
from bot.connectors.reddit.connector import RedditAuthError, RedditSource
from bot.connectors.x.client import json_object, problem
from bot.connectors.x.connector import XSource
from bot.errors import CredentialsRejected, SourceError
from bot.services.online_runner import Verdict, ok, skipped


def source_service(config: SourceConfig) -> str:
    """How a source is named in the report."""
    return f"source {config.name!r} ({config.type})"


async def check_source(
    http: httpx.AsyncClient, *, config: SourceConfig, base_dir: Path
) -> list[Verdict]:
    """Whether the platform accepts the source's credentials (one line); the connector talks
    through its own client, so ``http`` is not used."""
    service = source_service(config)
    source = build_source(config, base_dir=base_dir).source
    try:
        whoami = _WHOAMI.get(type(source))
        if whoami is None and isinstance(source, MetaSource):  # Facebook and Instagram
            whoami = _meta_whoami
        if whoami is None:
            return [skipped(service, "no sign-in to check")]
        return [ok(service, await whoami(source))]
    finally:
        await source.aclose()


async def _mastodon_whoami(source: MastodonSource) -> str:
    response = await source.client.request("GET", "/api/v1/accounts/verify_credentials")
    if response.status_code == 401:
        raise token_rejected(source.config)
    if response.status_code != 200:
        what = f"verify_credentials answered HTTP {response.status_code}"
        raise SourceError(source_message(source.config, what))
    return f"signed in as @{response.json().get('acct', '?')}"


async def _bluesky_whoami(source: BlueskySource) -> str:
    did = await source.client.ensure_session()
    return f"signed in as @{source.client.handle or did}"


async def _reddit_whoami(source: RedditSource) -> str:
    try:
        response = await source.client.request("GET", "/api/v1/me")
    except RedditAuthError as exc:
        raise CredentialsRejected(f"reddit source {source.name!r}: {exc}") from None
    if response.status_code != 200:
        raise SourceError(
            f"reddit source {source.name!r}: /api/v1/me answered HTTP {response.status_code}"
        )
    return f"signed in as u/{response.json().get('name', '?')}"


async def _x_whoami(source: XSource) -> str:
    response = await source.client.request("GET", "/2/users/me", "me")
    if response.status_code in (401, 403):
        raise CredentialsRejected(
            f"x source {source.name!r}: X refused the keys in {source.config.secret_envs} "
            f"({problem(response) or response.status_code}): copy fresh ones from the app's "
            "Keys and tokens page"
        )
    if response.status_code != 200:
        raise SourceError(
            f"x source {source.name!r}: /2/users/me answered HTTP {response.status_code}"
        )
    data = json_object(response).get("data")
    return f"signed in as @{data.get('username', '?') if isinstance(data, dict) else '?'}"


async def _meta_whoami(source: MetaSource[Any]) -> str:
    try:
        me = await source.client.get("/me", {"fields": "id,name"})
    except GraphApiError as exc:
        if exc.status == 0:
            raise httpx.TransportError(exc.message) from None
        where = f"{source.platform} source '{source.name}'"
        raise source_error(
            exc,
            where,
            token_env=source.config.token_env,
            permission="the needed",
            usage=source.client.usage,
        ) from None
    return f"signed in as {me.get('name') or me.get('id', '?')}"


_WHOAMI: dict[type[Any], Callable[[Any], Awaitable[str]]] = {
    MastodonSource: _mastodon_whoami,
    BlueskySource: _bluesky_whoami,
    RedditSource: _reddit_whoami,
    XSource: _x_whoami,
}
"""Who the credentials belong to, per source type."""
