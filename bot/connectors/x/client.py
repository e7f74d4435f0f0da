"""X (API v2) connection shared by the X source and publisher: the ``[[sources]]`` settings,
OAuth 1.0a user-context signing, and one rate budget per endpoint.

X limits each endpoint separately and reports it in ``x-rate-limit-limit``, ``-remaining`` and
``-reset`` (epoch seconds), so the client keeps a :class:`RateBudget` per endpoint family.
Requests are signed with the four OAuth 1.0a keys of the brand account (they do not expire);
recent search may use an app-only bearer token instead. Secrets travel in the Authorization
header only and never appear in a log line or an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.connectors.base import SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import ApiClient, BaseUrl, json_headers
from bot.connectors.http.budget import RateBudget
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP
from bot.retry_after import parse_retry_after

log = logging.getLogger(__name__)

PLATFORM = "x"
REPLY_LIMIT = 280
"""The longest post, in X's weighted length."""

Endpoint = Literal["me", "mentions", "search", "own_posts", "post"]
"""Endpoint families X rate-limits separately (each has its own budget)."""


class XSourceConfig(BaseModel):
    """One brand account on X (``[[sources]]`` with ``type = "x"``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["x"]
    name: SourceName
    base_url: BaseUrl = Field(default="https://api.x.com", description="X API root (tests: a fake)")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)
    user_id: str | None = Field(
        default=None, pattern=r"^[0-9]{1,20}$", description="the brand account's numeric id"
    )
    username: str | None = Field(default=None, description="the brand account's @handle")
    mentions: bool = Field(default=True, description="poll the account's mentions timeline")
    search_queries: list[str] = Field(
        default_factory=list, max_length=10, description="recent-search queries (alert only)"
    )
    interval: float = Field(default=60.0, ge=15.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    page_size: int = Field(default=20, ge=5, le=100, description="posts per request")
    max_pages: int = Field(default=5, ge=1, le=50, description="pages per route and poll")
    rate_limit_reserve: int = Field(
        default=5, ge=0, le=1000, description="calls kept per endpoint; polling stops at it"
    )
    api_key_env: str = "X_API_KEY"
    api_secret_env: str = "X_API_SECRET"
    access_token_env: str = "X_ACCESS_TOKEN"
    access_token_secret_env: str = "X_ACCESS_TOKEN_SECRET"
    bearer_token_env: str = Field(
        default="X_BEARER_TOKEN", description="optional app-only token, used for recent search"
    )
    reply_cost_usd: float = Field(
        default=0.01, ge=0.0, le=100.0, description="X's price of a reply to a post naming you"
    )
    link_reply_cost_usd: float = Field(
        default=0.20, ge=0.0, le=100.0, description="X's price of a post holding a link"
    )

    @field_validator("username")
    @classmethod
    def _handle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        handle = value.strip().removeprefix("@")
        if not handle or len(handle) > 15 or not handle.replace("_", "").isalnum():
            raise ValueError("'username' is the @handle: letters, digits and '_', at most 15")
        return handle

    @field_validator("search_queries")
    @classmethod
    def _queries(cls, values: list[str]) -> list[str]:
        queries = [v.strip() for v in values]
        if any(not q or len(q) > 512 for q in queries):
            raise ValueError("search queries must be 1 to 512 characters (X's limit)")
        return queries

    @property
    def secret_envs(self) -> str:
        """The four user-context variables, for messages that ask to renew them."""
        return ", ".join(
            (
                self.api_key_env,
                self.api_secret_env,
                self.access_token_env,
                self.access_token_secret_env,
            )
        )


@dataclass(frozen=True)
class XCredentials:
    """The app's consumer key pair and the brand account's access token pair (OAuth 1.0a
    user context), plus an optional app-only bearer token. Never printed."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)
    bearer_token: str | None = field(default=None, repr=False)


class OAuth1(httpx.Auth):
    """Signs each request with OAuth 1.0a HMAC-SHA1 in the Authorization header (authlib).

    X reads JSON bodies unsigned (only form bodies enter the signature), so the body is left
    out of the signature and sent as is."""

    def __init__(self, credentials: XCredentials) -> None:
        self._signer = ClientAuth(
            credentials.api_key,
            credentials.api_secret,
            token=credentials.access_token,
            token_secret=credentials.access_token_secret,
        )

    def __repr__(self) -> str:
        return "OAuth1(<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the signed Authorization header."""
        _, headers, _ = self._signer.sign(request.method, str(request.url), {}, b"")
        request.headers["Authorization"] = str(headers["Authorization"])
        yield request


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def __repr__(self) -> str:
        return "Bearer(<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


@dataclass(frozen=True)
class Identity:
    """The brand account: its id, and its @handle when known."""

    user_id: str
    username: str | None


class XClient(ApiClient):
    """Signed JSON calls to the X API with a rate budget per endpoint and the brand's identity."""

    def __init__(
        self,
        config: XSourceConfig,
        credentials: XCredentials,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not all(
            (
                credentials.api_key,
                credentials.api_secret,
                credentials.access_token,
                credentials.access_token_secret,
            )
        ):
            raise ValueError("the four X OAuth 1.0a keys are required")
        super().__init__(client, timeout=config.timeout, allow_private=config.allow_private)
        self.config = config
        self.budgets: dict[str, RateBudget] = {}
        self._user_auth = OAuth1(credentials)
        self._app_auth = _Bearer(credentials.bearer_token) if credentials.bearer_token else None
        self._identity: Identity | None = None
        if config.user_id and config.username:
            self._identity = Identity(config.user_id, config.username)

    @property
    def uses_app_token(self) -> bool:
        """Whether recent search goes out with the app-only bearer token."""
        return self._app_auth is not None

    def budget(self, endpoint: Endpoint) -> RateBudget:
        """The rate budget of one endpoint family (empty until a response reports it)."""
        return self.budgets.setdefault(endpoint, RateBudget())

    async def request(
        self,
        method: str,
        path: str,
        endpoint: Endpoint,
        *,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, Any] | None = None,
        app_only: bool = False,
    ) -> httpx.Response:
        """One call; raises httpx.HTTPError on transport failure, never for an HTTP status."""
        auth: httpx.Auth = self._user_auth
        if app_only and self._app_auth is not None:
            auth = self._app_auth
        response = await self._client.request(
            method,
            self.config.base_url + path,
            params=tuple(params) if params else None,
            json=json,
            headers=json_headers(),
            auth=auth,
            timeout=self.config.timeout,
        )
        _record_budget(self.budget(endpoint), response.headers)
        return response

    def retry_after(self, response: httpx.Response) -> float | None:
        """How long a 429 asks us to wait: ``x-rate-limit-reset``, else Retry-After."""
        reset = _reset_in(response.headers)
        if reset is not None:
            return reset
        return parse_retry_after(response.headers.get("retry-after"))

    async def identity(self) -> tuple[Identity | None, httpx.Response | None]:
        """The brand account (asked once with ``GET /2/users/me`` unless both ``user_id`` and
        ``username`` are configured); on failure, None and the response that failed."""
        if self._identity is not None:
            return self._identity, None
        response = await self.request("GET", "/2/users/me", "me")
        if response.status_code == 200:
            data = json_object(response).get("data")
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                username = data.get("username")
                self._identity = Identity(
                    self.config.user_id or data["id"],
                    self.config.username or (username if isinstance(username, str) else None),
                )
                return self._identity, None
        return None, response


def problem(response: httpx.Response) -> str:
    """X's own words about a failed call: the problem's ``detail`` (or ``title``), followed by
    the first entry of its ``errors`` array when that says more; cleaned, short, "" if none."""
    body = json_object(response)
    errors = body.get("errors")
    parts: list[str] = []
    for candidate in (body, *(errors[:1] if isinstance(errors, list) else [])):
        if not isinstance(candidate, dict):
            continue
        for key in ("detail", "message", "title"):
            value = candidate.get(key)
            if isinstance(value, str) and value.strip():
                text = value.strip().rstrip(".")
                if text not in parts:
                    parts.append(text)
                break
    return clean_text(": ".join(parts), limit=300)


def problem_type(response: httpx.Response) -> str:
    """The problem's ``type`` URI (e.g. ``…/problems/client-forbidden``), or ""."""
    value = json_object(response).get("type")
    return value if isinstance(value, str) else ""


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object ({} when it is not JSON or not an object)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reset_in(headers: httpx.Headers) -> float | None:
    """Seconds until ``x-rate-limit-reset`` (epoch seconds), if the header is readable."""
    reset = headers.get("x-rate-limit-reset", "")
    if not reset.isdigit():
        return None
    return max(0.0, int(reset) - time.time())


def _record_budget(budget: RateBudget, headers: httpx.Headers) -> None:
    """Store ``x-rate-limit-remaining`` and the reset time (absent headers change nothing)."""
    remaining = headers.get("x-rate-limit-remaining", "")
    if remaining.isdigit():
        budget.record(int(remaining), _reset_in(headers))
