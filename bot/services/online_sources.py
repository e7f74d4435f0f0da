"""Online check of each source's credentials, through the connector's own client and its own
sign-in question (Mastodon ``verify_credentials``, Bluesky ``createSession``, Reddit
``/api/v1/me``, X ``/2/users/me``, Facebook and Instagram Graph ``/me``; see each connector's
``signed_in_as``). Sources without credentials (RSS, Hacker News, webhooks) are not checked.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.config import SourceConfig
from bot.connectors.catalog import build_source
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
    built = build_source(config, base_dir=base_dir)
    try:
        if built.sign_in is None:
            return [skipped(service, "no sign-in to check")]
        return [ok(service, await built.sign_in())]
    finally:
        await built.source.aclose()
