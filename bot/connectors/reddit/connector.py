"""Reddit connector: subreddit search, subreddit comments and username mentions as a source;
comments as a publisher.

Authentication is a "script" app's password grant: the bearer token is fetched from
``{auth_url}/api/v1/access_token``, cached until shortly before it expires and fetched again once
on a 401. Every route (a search per query over the chosen subreddits, the subreddits' newest
comments, the inbox's username mentions) is a newest-first listing; its cursor is a
``created_utc`` watermark plus the fullnames seen at that second, so a poll pages back with
``after`` only until it reaches what it already read. A route never seen before reads its newest
page; the core's look-back rule trims the rest.

Reddit allows 100 calls a minute per client and reports the budget in ``X-Ratelimit-*``: a poll
stops early when it nears the configured reserve, and a 429 becomes SourceRateLimited. Secrets
travel in headers and form bodies only, never in an error message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot import __version__
from bot.connectors.base import ClientSource, Cursor, FetchResult, PublishResult, SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import ApiClient
from bot.connectors.http.budget import RateBudget
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP, failure
from bot.domain.models import Author, Mention, RawMention, Reply
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited

log = logging.getLogger(__name__)

PLATFORM = "reddit"
WEB_URL = "https://www.reddit.com"
MAX_COMMENT_CHARS = 10_000
TOKEN_MARGIN = 60.0
"""Seconds before its stated expiry that a token is treated as expired."""

_WAIT = re.compile(r"(\d+)\s*(second|minute|hour)", re.IGNORECASE)
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_GONE_TEXTS = frozenset({"[deleted]", "[removed]"})


class RedditSourceConfig(BaseModel):
    """One Reddit account (``[[sources]]`` with ``type = "reddit"``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["reddit"]
    name: SourceName
    username: str = Field(
        pattern=r"^[A-Za-z0-9_-]{3,20}$", description="the account the script app belongs to"
    )
    base_url: str = Field(default="https://oauth.reddit.com", description="the OAuth API")
    auth_url: str = Field(default=WEB_URL, description="where access tokens are issued")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)
    client_id_env: str = "REDDIT_CLIENT_ID"
    client_secret_env: str = "REDDIT_CLIENT_SECRET"
    password_env: str = "REDDIT_PASSWORD"
    interval: float = Field(default=120.0, ge=10.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    subreddits: list[str] = Field(default_factory=list, max_length=50)
    search_queries: list[str] = Field(
        default_factory=list, max_length=20, description="searched in `subreddits` (posts only)"
    )
    comments: bool = Field(default=True, description="read every new comment in `subreddits`")
    mentions: bool = Field(default=True, description="read u/username mentions from the inbox")
    max_pages: int = Field(default=3, ge=1, le=10, description="pages of 100 per route and poll")
    rate_limit_reserve: int = Field(
        default=10, ge=0, le=100, description="calls kept for posting; polling stops below it"
    )

    @field_validator("base_url", "auth_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("URLs must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("subreddits")
    @classmethod
    def _subreddits(cls, values: list[str]) -> list[str]:
        names = [v.strip().removeprefix("/").removeprefix("r/") for v in values]
        bad = [n for n in names if not _SUBREDDIT.fullmatch(n)]
        if bad:
            raise ValueError(f"not subreddit names: {', '.join(bad)}")
        return names

    @field_validator("search_queries")
    @classmethod
    def _queries(cls, values: list[str]) -> list[str]:
        queries = [v.strip() for v in values]
        if any(not q or len(q) > 512 for q in queries):
            raise ValueError("search queries must be 1 to 512 characters")
        return queries


class RedditAuthError(Exception):
    """The credentials were refused; the message names the env vars, never their values."""


class RedditClient(ApiClient):
    """OAuth calls for one script app: token cache, 401 refresh, rate budget."""

    def __init__(
        self,
        config: RedditSourceConfig,
        *,
        client_id: str,
        client_secret: str,
        password: str,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        missing = [
            env
            for env, value in (
                (config.client_id_env, client_id),
                (config.client_secret_env, client_secret),
                (config.password_env, password),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"reddit source {config.name!r} needs {', '.join(missing)} set")
        super().__init__(client, timeout=config.timeout, allow_private=config.allow_private)
        self.config = config
        self.budget = RateBudget()
        self.user_agent = f"parley/{__version__} by u/{config.username}"
        self._credentials = (client_id, client_secret)
        self._password = password
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One API call, re-authenticating once on 401; raises httpx.HTTPError on transport
        failure and RedditAuthError when the credentials are refused."""
        stale: str | None = None
        for _ in range(2):
            token = await self._access_token(stale)
            response = await self._client.request(
                method,
                self.config.base_url + path,
                params=params,
                data=data,
                headers={
                    "Authorization": f"bearer {token}",
                    "User-Agent": self.user_agent,
                    "Accept": "application/json",
                },
                timeout=self.config.timeout,
            )
            _record_budget(self.budget, response.headers)
            if response.status_code != 401:
                return response
            stale = token
        return response

    async def _access_token(self, stale: str | None) -> str:
        """The cached token unless it expired or is ``stale`` (refused with a 401)."""
        async with self._token_lock:
            # The source and the publisher share this client: the first caller to find the
            # token stale fetches a new one, the others then reuse it.
            valid = time.monotonic() < self._token_expires
            if self._token is not None and valid and self._token != stale:
                return self._token
            self._token, expires_in = await self._fetch_token()
            self._token_expires = time.monotonic() + max(0.0, expires_in - TOKEN_MARGIN)
            return self._token

    async def _fetch_token(self) -> tuple[str, float]:
        response = await self._client.post(
            self.config.auth_url + "/api/v1/access_token",
            auth=self._credentials,
            data={
                "grant_type": "password",
                "username": self.config.username,
                "password": self._password,
            },
            headers={"User-Agent": self.user_agent},
            timeout=self.config.timeout,
        )
        env = f"{self.config.client_id_env}/{self.config.client_secret_env}"
        if response.status_code in (401, 403):
            raise RedditAuthError(f"reddit refused the app credentials in {env}")
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"token endpoint answered HTTP {response.status_code}",
                request=response.request,
                response=response,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RedditAuthError("reddit's token endpoint answered without JSON")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            if body.get("error") == "invalid_grant":
                raise RedditAuthError(
                    f"reddit refused u/{self.config.username} with the password in "
                    f"{self.config.password_env} (wrong password, or two-factor login is on)"
                )
            raise RedditAuthError(f"reddit issued no access token ({body.get('error', '?')})")
        expires_in = body.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, int | float) else 3600.0


class RedditSource(ClientSource[RedditSourceConfig, RedditClient]):
    """Polls one account's searches, subreddit comments and mentions (see the module docstring)."""

    @classmethod
    def create(
        cls,
        config: RedditSourceConfig,
        *,
        client_id: str,
        client_secret: str,
        password: str,
        http: httpx.AsyncClient | None = None,
    ) -> RedditSource:
        """A source with its own client."""
        client = RedditClient(
            config,
            client_id=client_id,
            client_secret=client_secret,
            password=password,
            client=http,
        )
        return cls(config, client)

    @property
    def rate_limit_remaining(self) -> int | None:
        """Calls left in the current window (health display)."""
        return self.client.budget.remaining

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """New posts and comments on every route since ``cursor``."""
        new_cursor = dict(cursor)
        items: list[RawMention] = []
        seen: set[str] = set()
        for key, path, params in self._routes():
            if self.client.budget.below(self.config.rate_limit_reserve):
                log.warning(
                    "reddit source %r: %s calls left before the rate limit; "
                    "skipping the rest of this poll",
                    self.name,
                    self.client.budget.remaining,
                )
                break
            things, mark = await self._read_route(path, params, cursor.get(key))
            if mark is not None:
                new_cursor[key] = mark
            for thing in things:
                mention = self._mention(thing)
                if mention is not None and mention.external_id not in seen:
                    seen.add(mention.external_id)
                    items.append(mention)
        return FetchResult(items=items, cursor=new_cursor)

    def _routes(self) -> list[tuple[str, str, dict[str, str]]]:
        """(cursor key, path, fixed params) per route; subreddits are joined as one multireddit,
        which costs one call instead of one per subreddit."""
        routes: list[tuple[str, str, dict[str, str]]] = []
        subs = "+".join(self.config.subreddits)
        if subs:
            for query in self.config.search_queries:
                params = {"q": query, "restrict_sr": "1", "sort": "new", "type": "link"}
                routes.append((f"search:{subs.lower()}:{query}", f"/r/{subs}/search", params))
            if self.config.comments:
                routes.append((f"comments:{subs.lower()}", f"/r/{subs}/comments", {}))
        if self.config.mentions:
            routes.append(("mentions", "/message/mentions", {}))
        return routes

    async def _read_route(
        self, path: str, fixed: dict[str, str], mark: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Things newer than the watermark ``mark`` (oldest first) and the new watermark."""
        since, seen_at_mark = _parse_mark(mark)
        collected: list[dict[str, Any]] = []
        after: str | None = None
        pages = 1 if mark is None else self.config.max_pages
        for _ in range(pages):
            params = {**fixed, "limit": "100", "raw_json": "1"}
            if after:
                params["after"] = after
            children, after = await self._listing(path, params)
            reached = False
            for child in children:
                created = _created(child)
                if created is None:
                    collected.append(child)  # let _mention log and skip it
                    continue
                if since is not None and (
                    created < since or (created == since and _fullname(child) in seen_at_mark)
                ):
                    reached = True
                    continue
                collected.append(child)
            if reached or not after or self.client.budget.below(self.config.rate_limit_reserve):
                break
        else:
            if since is not None:
                log.warning(
                    "reddit source %r: %s had more than %d pages of new items; older ones "
                    "were not read",
                    self.name,
                    path,
                    pages,
                )
        collected.reverse()
        return collected, _next_mark(since, seen_at_mark, collected)

    async def _listing(
        self, path: str, params: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None]:
        response = await self._call(path, params)
        try:
            body = response.json()
            data = body["data"]
            children = data["children"]
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"reddit source {self.name!r}: {path}: not a listing") from None
        if not isinstance(children, list):
            raise SourceError(f"reddit source {self.name!r}: {path}: not a listing")
        after = data.get("after")
        return [c if isinstance(c, dict) else {} for c in children], (
            after if isinstance(after, str) else None
        )

    async def _call(self, path: str, params: dict[str, str]) -> httpx.Response:
        prefix = f"reddit source {self.name!r}: {path}"
        try:
            response = await self.client.request("GET", path, params=params)
        except RedditAuthError as exc:
            raise CredentialsRejected(f"reddit source {self.name!r}: {exc}") from None
        except httpx.TimeoutException:
            raise SourceError(f"{prefix}: timed out after {self.config.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"{prefix}: request failed ({exc})") from None
        status = response.status_code
        if status == 200:
            return response
        if status == 429:
            retry_after = self.client.budget.retry_after(response)
            hint = f", retry after {retry_after:.0f}s" if retry_after is not None else ""
            raise SourceRateLimited(
                f"{prefix}: HTTP 429 Too Many Requests{hint}", retry_after=retry_after
            )
        if status == 401:
            raise CredentialsRejected(
                f"reddit source {self.name!r}: the access token was refused even after "
                "signing in again (is the app revoked?)"
            )
        if status == 403:
            raise SourceError(f"{prefix}: forbidden (private or banned subreddit, or app scopes)")
        if status == 404:
            raise SourceError(f"{prefix}: not found (check the subreddit names)")
        raise SourceError(f"{prefix}: HTTP {status}")

    def _mention(self, thing: dict[str, Any]) -> RawMention | None:
        try:
            mention = raw_mention(self.name, thing)
        except (KeyError, TypeError, ValueError) as exc:
            data = thing.get("data")
            ident = data.get("name") if isinstance(data, dict) else None
            log.warning(
                "reddit source %r: skipped a malformed item %s (%s)",
                self.name,
                str(ident)[:40] if ident else "without a name",
                exc,
            )
            return None
        if mention is None or mention.author.handle.lower() == self.config.username.lower():
            return None  # removed, or Parley's own comment
        return mention


class RedditPublisher:
    """Posts approved replies as comments under the mentioned post or comment."""

    def __init__(self, client: RedditClient, *, name: str = PLATFORM) -> None:
        self.client = client
        self.name = name

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Comment under ``mention.post_id`` (a t3_/t1_ fullname)."""
        thing_id = _thing_id(mention)
        if len(reply.text) > MAX_COMMENT_CHARS:
            raise PublishError(
                f"reddit: reply is {len(reply.text)} characters; comments allow "
                f"{MAX_COMMENT_CHARS}",
                permanent=True,
            )
        data = {"api_type": "json", "thing_id": thing_id, "text": reply.text}
        response = await self._send("POST", "/api/comment", data=data)
        try:
            body = response.json()["json"]
        except (ValueError, KeyError, TypeError):
            raise PublishError("reddit: the comment answer is not JSON") from None
        _raise_api_errors(body.get("errors") if isinstance(body, dict) else None)
        try:
            comment = body["data"]["things"][0]["data"]
        except (KeyError, IndexError, TypeError):
            raise PublishError("reddit: the answer carries no comment") from None
        return _result(comment, thing_id)

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The account's own comment under the mention with the reply's text, if any."""
        thing_id = _thing_id(mention)
        username = self.client.config.username
        try:
            response = await self.client.request(
                "GET",
                f"/user/{quote(username)}/comments",
                params={"limit": "25", "sort": "new", "raw_json": "1"},
            )
            children = response.json()["data"]["children"] if response.status_code == 200 else None
        except (httpx.HTTPError, RedditAuthError, ValueError, KeyError, TypeError):
            children = None
        if not isinstance(children, list):
            # Reddit has no idempotency key: the resend that follows may duplicate the comment.
            log.warning("reddit: could not look for reply #%d among own comments", reply.id)
            return None
        # A comment written by hand before this approval is not the one the crash interrupted.
        not_before = reply.created_at.timestamp() - 60
        for child in children:
            data = child.get("data") if isinstance(child, dict) else None
            if not isinstance(data, dict):
                continue
            created = data.get("created_utc")
            if (
                data.get("parent_id") == thing_id
                and str(data.get("body", "")).strip() == reply.text.strip()
                and isinstance(created, int | float)
                and created >= not_before
            ):
                return _result(data, thing_id)
        return None

    async def _send(self, method: str, path: str, *, data: dict[str, str]) -> httpx.Response:
        try:
            response = await self.client.request(method, path, data=data)
        except RedditAuthError as exc:
            raise PublishError(f"reddit: {exc}", permanent=True) from None
        except httpx.TimeoutException:
            raise PublishError("reddit: timed out (outcome unknown)") from None
        except httpx.HTTPError as exc:
            raise PublishError(f"reddit: {failure(exc)}") from None
        status = response.status_code
        if status == 200:
            return response
        if status == 429:
            raise PublishError(
                "reddit: rate limited (HTTP 429)",
                retry_after=self.client.budget.retry_after(response),
            )
        if status >= 500:
            raise PublishError(f"reddit: server error (HTTP {status})")
        if status == 401:
            raise PublishError("reddit: the access token was refused", permanent=True)
        if status == 403:
            raise PublishError("reddit: not allowed to comment there (HTTP 403)", permanent=True)
        if status == 404:
            raise PublishError("reddit: the post or comment no longer exists", permanent=True)
        raise PublishError(f"reddit: HTTP {status}", permanent=True)


def raw_mention(source: str, thing: dict[str, Any]) -> RawMention | None:
    """A t3 (post) or t1 (comment) as a RawMention; None for removed items.

    Raises KeyError/TypeError/ValueError for a malformed thing.
    """
    kind = thing["kind"]
    data = thing["data"]
    if kind not in ("t1", "t3"):
        raise ValueError(f"unexpected kind {kind!r}")
    fullname = _require_str(data["name"])
    created = _created(thing)
    if created is None:
        raise ValueError("created_utc")
    author = str(data.get("author") or "")
    title: str | None = None
    context: str | None = None
    parent: str | None = None
    if kind == "t3":
        title = clean_text(str(data.get("title") or ""), limit=500) or None
        body = str(data.get("selftext") or "")
        text = "\n\n".join(p for p in (title, clean_text(body)) if p)
        reach = data.get("subreddit_subscribers")
        if not isinstance(reach, int):
            reach = data.get("score")
        link = data.get("permalink")
    else:
        body = str(data.get("body") or "")
        text = clean_text(body)
        reach = data.get("score")
        context = clean_text(str(data.get("link_title") or ""), limit=2000) or None
        parent = data.get("parent_id") if isinstance(data.get("parent_id"), str) else None
        # Inbox mentions carry ``context`` (the permalink with ``?context=3``) instead.
        link = data.get("permalink") or str(data.get("context") or "").split("?")[0] or None
    if body.strip() in _GONE_TEXTS or not text:
        return None
    return RawMention(
        source=source,
        platform=PLATFORM,
        external_id=fullname,
        url=WEB_URL + link if isinstance(link, str) and link.startswith("/") else None,
        author=Author(
            handle=author,
            profile_url=f"{WEB_URL}/user/{author}" if author not in ("", "[deleted]") else None,
            reach=reach if isinstance(reach, int) and not isinstance(reach, bool) else None,
        ),
        title=title,
        text=text,
        created_at=datetime.fromtimestamp(created, UTC),
        parent_ref=parent,
        thread_context=context,
    )


def wait_seconds(message: str) -> float | None:
    """Seconds in a RATELIMIT message ("try again in 5 minutes."), if it states any."""
    match = _WAIT.search(message)
    if match is None:
        return None
    unit = match.group(2).lower()
    return float(match.group(1)) * {"second": 1, "minute": 60, "hour": 3600}[unit]


def _record_budget(budget: RateBudget, headers: httpx.Headers) -> None:
    """Reddit's ``X-Ratelimit-Remaining`` (a float such as ``"97.0"``) and
    ``X-Ratelimit-Reset`` (seconds); absent or unreadable headers change nothing."""
    try:
        remaining = float(headers["x-ratelimit-remaining"])
        reset = float(headers.get("x-ratelimit-reset", "0"))
    except (KeyError, ValueError):
        return
    budget.record(int(remaining), reset)


def _raise_api_errors(errors: Any) -> None:
    if not errors:
        return
    first = errors[0] if isinstance(errors, list) else None
    parts = [str(p) for p in first] if isinstance(first, list) else [str(first)]
    code = parts[0]
    message = clean_text(parts[1] if len(parts) > 1 else "", limit=200)
    detail = f"reddit: {code}" + (f" ({message})" if message else "")
    if code == "RATELIMIT":
        raise PublishError(detail, retry_after=wait_seconds(message))
    # The other codes (THREAD_LOCKED, DELETED_COMMENT, TOO_OLD, BANNED_FROM_SUBREDDIT…) judge
    # the target or the text: sending the same comment again cannot succeed.
    raise PublishError(detail, permanent=True)


def _result(comment: dict[str, Any], thing_id: str) -> PublishResult:
    name = comment.get("name") or comment.get("id")
    if not isinstance(name, str) or not name:
        raise PublishError("reddit: the answer carries no comment id")
    if not name.startswith("t1_"):
        name = "t1_" + name
    permalink = comment.get("permalink")
    if isinstance(permalink, str) and permalink.startswith("/"):
        url = WEB_URL + permalink
    else:
        link = comment.get("link_id") or comment.get("link") or thing_id
        url = f"{WEB_URL}/comments/{str(link).split('_')[-1]}/_/{name[3:]}/"
    return PublishResult(posted_id=name, url=url)


def _thing_id(mention: Mention) -> str:
    if not mention.post_id.startswith(("t1_", "t3_")):
        raise PublishError(
            f"reddit: {mention.post_id!r} is not a Reddit post or comment", permanent=True
        )
    return mention.post_id


def _created(thing: dict[str, Any]) -> float | None:
    data = thing.get("data")
    value = data.get("created_utc") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _fullname(thing: dict[str, Any]) -> str:
    data = thing.get("data")
    value = data.get("name") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _parse_mark(mark: str | None) -> tuple[float | None, set[str]]:
    """``"<created_utc> <fullname,…>"`` → (watermark, fullnames read at that second)."""
    if not mark:
        return None, set()
    stamp, _, names = mark.partition(" ")
    try:
        return float(stamp), {n for n in names.split(",") if n}
    except ValueError:
        return None, set()


def _next_mark(since: float | None, seen: set[str], things: list[dict[str, Any]]) -> str | None:
    stamps = [c for c in (_created(t) for t in things) if c is not None]
    if not stamps:
        return None if since is None else _format_mark(since, seen)
    newest = max(stamps)
    names = {_fullname(t) for t in things if _created(t) == newest} - {""}
    if since is not None and newest == since:
        names |= seen
    return _format_mark(newest, names)


def _format_mark(stamp: float, names: set[str]) -> str:
    return f"{stamp!r} {','.join(sorted(names))}"


def _require_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


async def signed_in_as(source: RedditSource) -> str:
    """The account the script app signs in as (``/api/v1/me``)."""
    try:
        response = await source.client.request("GET", "/api/v1/me")
    except RedditAuthError as exc:
        raise CredentialsRejected(f"reddit source {source.name!r}: {exc}") from None
    if response.status_code != 200:
        raise SourceError(
            f"reddit source {source.name!r}: /api/v1/me answered HTTP {response.status_code}"
        )
    return f"signed in as u/{response.json().get('name', '?')}"
