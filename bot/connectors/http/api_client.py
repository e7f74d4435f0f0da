"""What the connectors' API clients share: Parley's User-Agent, the headers of a JSON call, the
check of a ``base_url`` setting, and an httpx client that only its creator closes (a guarded
one: bodies capped once decompressed, private addresses refused, see ``outbound_limits``)."""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import AfterValidator

from bot import __version__
from bot.connectors.http.outbound_limits import guarded_client

USER_AGENT = f"Parley/{__version__} (+self-hosted mention monitor)"


def json_headers(token: str | None = None) -> dict[str, str]:
    """The headers of a JSON API call, with ``Authorization: Bearer`` when ``token`` is given."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return {**auth, "User-Agent": USER_AGENT, "Accept": "application/json"}


def _http_base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("'base_url' must start with http:// or https://")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_http_base_url)]
"""A ``base_url`` setting: an http(s) URL, kept without its trailing slash."""


class ApiClient:
    """Holds the httpx client a connector's calls go through: created here (and closed by
    :meth:`aclose`) unless the caller passes one in, which the caller then closes."""

    def __init__(
        self, client: httpx.AsyncClient | None, *, timeout: float, allow_private: bool = False
    ) -> None:
        self._owns_client = client is None
        self._client = client or guarded_client(timeout=timeout, allow_private=allow_private)
        self._timeout = timeout

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()
