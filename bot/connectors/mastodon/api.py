"""Mastodon's API as both the source and the stream read it: the config section, the
authenticated client with its rate budget, a Status as a RawMention, and the source's messages.

The access token is sent as a header only and never appears in an error message.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.connectors.base import SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import ApiClient, BaseUrl, json_headers
from bot.connectors.http.budget import RateBudget
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP, MAX_BODY_EXTENSION
from bot.domain.models import Author, RawMention
from bot.errors import CredentialsRejected

PLATFORM = "mastodon"
REPLY_LIMIT = 500
"""The longest status on a default instance (``max_characters`` sets a source's own)."""

Visibility = Literal["public", "unlisted", "private", "direct"]


class MastodonSourceConfig(BaseModel):
    """One Mastodon account on one instance (``[[sources]]`` with ``type = "mastodon"``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mastodon"]
    name: SourceName
    base_url: BaseUrl = Field(description="the instance, e.g. https://mastodon.social")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)
    token_env: str = Field(
        default="MASTODON_ACCESS_TOKEN", description="environment variable holding the token"
    )
    interval: float = Field(default=120.0, ge=5.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    mentions: bool = Field(default=True, description="poll mention notifications")
    hashtags: list[str] = Field(default_factory=list, max_length=20)
    search_queries: list[str] = Field(default_factory=list, max_length=20)
    page_size: int = Field(default=40, ge=1, le=80)
    max_pages: int = Field(default=5, ge=1, le=50, description="pages per route and poll")
    thread_context: bool = Field(default=True, description="fetch the parent post of replies")
    max_context_fetches: int = Field(default=10, ge=0, le=100, description="per poll")
    rate_limit_reserve: int = Field(
        default=20, ge=0, le=300, description="calls kept for posting; polling stops below it"
    )
    visibility: Visibility = Field(
        default="public", description="of replies; never wider than the mention's own"
    )
    reply_language: str | None = Field(
        default=None, description="ISO 639 code sent with replies (default: the mention's)"
    )
    max_characters: int = Field(default=REPLY_LIMIT, ge=1, le=100_000)
    streaming: bool = Field(
        default=False, description="receive mentions in real time (streaming API, SSE)"
    )
    poll_interval: float = Field(
        default=600.0, ge=60.0, le=86_400.0, description="polling fallback while streaming"
    )

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        tags = [v.strip().removeprefix("#") for v in values]
        bad = [t for t in tags if not re.fullmatch(r"\w{1,100}", t)]
        if bad:
            raise ValueError(f"hashtags are letters, digits and '_': {', '.join(bad)}")
        return tags

    @field_validator("search_queries")
    @classmethod
    def _queries(cls, values: list[str]) -> list[str]:
        queries = [v.strip() for v in values]
        if any(not q or len(q) > 500 for q in queries):
            raise ValueError("search queries must be 1 to 500 characters")
        return queries

    @model_validator(mode="after")
    def _stream_needs_mentions(self) -> MastodonSourceConfig:
        if self.streaming and not self.mentions:
            raise ValueError("'streaming' carries mention notifications: set mentions = true")
        return self


class MastodonClient(ApiClient):
    """Authenticated JSON calls to one instance, with the rate budget and the own account id."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 20.0,
        client: httpx.AsyncClient | None = None,
        allow_private: bool = False,
    ) -> None:
        if not token:
            raise ValueError("a Mastodon access token is required")
        super().__init__(client, timeout=timeout, allow_private=allow_private)
        self.base_url = base_url.rstrip("/")
        self.budget = RateBudget()
        self._headers = json_headers(token)
        self._own_id: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call; raises httpx.HTTPError on transport failure, never for an HTTP status."""
        response = await self._client.request(
            method,
            self.base_url + path,
            params=tuple(params) if params else None,
            json=json,
            headers={**self._headers, **(headers or {})},
            timeout=self._timeout,
        )
        record_budget(self.budget, response.headers)
        return response

    def stream(
        self, url: str, *, read_timeout: float
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """An open ``GET`` of the event stream at ``url`` (the streaming host may differ from
        the instance); ``read_timeout`` is the longest silence tolerated."""
        return self._client.stream(
            "GET",
            url,
            headers={**self._headers, "Accept": "text/event-stream"},
            timeout=httpx.Timeout(self._timeout, read=read_timeout),
            # Endless by design: no total cap; the reader caps each event, and decoding
            # stays bounded per step (bot.connectors.http.outbound_limits).
            extensions={MAX_BODY_EXTENSION: None},
        )

    async def own_account_id(self) -> str | None:
        """The token's account id (``verify_credentials``, asked once); None if unavailable."""
        if self._own_id is None:
            response = await self.request("GET", "/api/v1/accounts/verify_credentials")
            if response.status_code == 200:
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("id"), str):
                    self._own_id = body["id"]
        return self._own_id


def source_message(config: MastodonSourceConfig, what: str) -> str:
    """A source's error or log line, naming the source and its instance (never the token)."""
    return f"mastodon source '{config.name}' ({config.base_url}): {what}"


def token_rejected(config: MastodonSourceConfig) -> CredentialsRejected:
    """The error for a token the instance refused (HTTP 401)."""
    return CredentialsRejected(
        source_message(
            config,
            f"the access token in {config.token_env} was rejected (expired, revoked or mistyped)",
        )
    )


def raw_mention(source: str, status: dict[str, Any]) -> RawMention:
    """A Status (polled or streamed) as a RawMention; raises KeyError, TypeError or ValueError
    (pydantic's ValidationError too) on a malformed one."""
    account = status["account"]
    created = parse_time(status["created_at"])
    if created is None:
        raise ValueError("created_at")
    content = clean_text(str(status.get("content") or ""), html=True)
    warning = clean_text(str(status.get("spoiler_text") or ""), limit=500)
    text = f"CW: {warning}\n\n{content}" if warning else content
    followers = account.get("followers_count")
    parent = status.get("in_reply_to_id")
    return RawMention(
        source=source,
        platform=PLATFORM,
        external_id=require_str(status["id"]),
        url=status.get("url") or status.get("uri"),
        author=Author(
            handle=require_str(account["acct"]),
            display_name=clean_text(str(account.get("display_name") or ""), limit=200) or None,
            profile_url=account.get("url"),
            reach=followers if isinstance(followers, int) else None,
        ),
        text=text,
        language=status.get("language") or None,
        created_at=created,
        parent_ref=parent if isinstance(parent, str) else None,
    )


def record_budget(budget: RateBudget, headers: httpx.Headers) -> None:
    """Mastodon's ``X-RateLimit-Remaining`` and its ``X-RateLimit-Reset`` time (absent headers
    change nothing)."""
    remaining = headers.get("x-ratelimit-remaining", "")
    if remaining.isdigit():
        value = headers.get("x-ratelimit-reset", "")
        # an ISO time; some servers send unix seconds instead
        reset = datetime.fromtimestamp(int(value), UTC) if value.isdigit() else parse_time(value)
        reset_in = None if reset is None else (reset - datetime.now(UTC)).total_seconds()
        budget.record(int(remaining), reset_in)


def require_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
