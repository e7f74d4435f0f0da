"""X (API v2) connector: the brand account's mentions (and optional recent searches) as a
source; replies go out through :class:`bot.connectors.x.publisher.XPublisher`.

Each route (``GET /2/users/{id}/mentions``, and ``GET /2/tweets/search/recent`` per configured
query) keeps the newest post id read as its cursor. A route never seen before takes only its
newest page (the core's look-back rule does the rest); a known route reads everything after the
cursor with ``since_id``, following ``next_token`` for up to ``max_pages`` pages. X pages from
the newest down, so a catch-up cut short (page limit, or a rate budget close to the reserve)
remembers where it stopped (``until_id``) and finishes on the next poll before the cursor moves
on: no gaps.

Answerability. Since February 2026 X lets self-serve apps reply only where the author
@mentioned or quoted the replying account. A post is ``answerable`` when its
``entities.mentions`` name the brand account or it quotes one of the brand's posts; every other
post (and search hits unless they meet the same rule) is alert-only, answered by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
from pydantic import ValidationError

from bot.connectors.base import ClientSource, Cursor, FetchResult
from bot.connectors.clean import clean_text
from bot.connectors.http.outbound_limits import failure
from bot.connectors.x.client import (
    PLATFORM,
    Endpoint,
    Identity,
    XClient,
    XCredentials,
    XSourceConfig,
    json_object,
    problem,
)
from bot.domain.models import Author, RawMention
from bot.errors import CredentialsRejected, SourceError, SourceRateLimited

log = logging.getLogger(__name__)

TWEET_FIELDS = (
    "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,entities,"
    "lang,public_metrics,note_tweet"
)
EXPANSIONS = "author_id,referenced_tweets.id,referenced_tweets.id.author_id"
USER_FIELDS = "username,name,public_metrics,verified"


@dataclass(frozen=True)
class _Route:
    key: str
    path: str
    params: tuple[tuple[str, str], ...]
    endpoint: Endpoint
    token_param: str
    min_page: int
    app_only: bool = False


class _StaleCursor(SourceError):
    """X refused the route's ``since_id`` (older than the search window)."""


class XSource(ClientSource[XSourceConfig, XClient]):
    """Polls the brand account's mentions and recent searches (see the module docstring)."""

    @classmethod
    def create(
        cls,
        config: XSourceConfig,
        credentials: XCredentials,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> XSource:
        """A source with its own client for ``config.base_url``."""
        return cls(config, XClient(config, credentials, client=http))

    @property
    def rate_limit_remaining(self) -> int | None:
        """Calls left on the most used-up endpoint this source polls (health display)."""
        known = [
            budget.remaining
            for endpoint, budget in self.client.budgets.items()
            if endpoint in ("mentions", "search") and budget.remaining is not None
        ]
        return min(known) if known else None

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """New posts on every route since ``cursor``; the new cursor covers what was read."""
        me = await self._identity()
        new_cursor = dict(cursor)
        found: dict[str, RawMention] = {}
        for route in self._routes(me):
            if self.client.budget(route.endpoint).below(self.config.rate_limit_reserve):
                self._warn_budget(route)
                continue
            items, state = await self._read_route(route, cursor, me)
            for key, value in state.items():
                if value is None:
                    new_cursor.pop(key, None)
                else:
                    new_cursor[key] = value
            for item in items:
                found.setdefault(item.external_id, item)
        items = sorted(found.values(), key=lambda m: _id_order(m.external_id))
        return FetchResult(items=items, cursor=new_cursor)

    def _routes(self, me: Identity) -> list[_Route]:
        fields = (
            ("tweet.fields", TWEET_FIELDS),
            ("expansions", EXPANSIONS),
            ("user.fields", USER_FIELDS),
        )
        routes: list[_Route] = []
        if self.config.mentions:
            path = f"/2/users/{me.user_id}/mentions"
            routes.append(_Route("mentions", path, fields, "mentions", "pagination_token", 5))
        for query in self.config.search_queries:
            routes.append(
                _Route(
                    f"search:{query}",
                    "/2/tweets/search/recent",
                    (("query", query), *fields),
                    "search",
                    "next_token",
                    10,
                    app_only=True,
                )
            )
        return routes

    async def _read_route(
        self, route: _Route, cursor: Cursor, me: Identity
    ) -> tuple[list[RawMention], dict[str, str | None]]:
        """Posts after the route's cursor, and the cursor entries to write back."""
        since = cursor.get(route.key)
        pending_key, until_key = f"{route.key}#newest", f"{route.key}#until"
        pending, until = cursor.get(pending_key), cursor.get(until_key)
        fixed = [*route.params, ("max_results", str(max(route.min_page, self.config.page_size)))]
        if since is not None:
            fixed.append(("since_id", since))
            if until is not None:
                fixed.append(("until_id", until))
        items: list[RawMention] = []
        newest: str | None = None
        oldest: str | None = None
        token: str | None = None
        for page in range(1 if since is None else self.config.max_pages):
            if page and self.client.budget(route.endpoint).below(self.config.rate_limit_reserve):
                self._warn_budget(route)
                break
            params = [*fixed, (route.token_param, token)] if token else fixed
            try:
                body = await self._get(route.path, params, route.endpoint, app_only=route.app_only)
            except _StaleCursor:
                if since is None:
                    raise
                # Recent search reaches back 7 days: after a longer stop, start afresh.
                log.warning("x source %r: %s cursor too old; starting afresh", self.name, route.key)
                fresh, state = await self._read_route(route, {}, me)
                return fresh, {**state, pending_key: None, until_key: None}
            items.extend(self._page_mentions(body, me))
            meta = body.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            ids = _page_ids(body, meta)
            if ids:
                newest = max(newest or ids[0], *ids, key=_id_order)
                oldest = min(oldest or ids[0], *ids, key=_id_order)
            next_token = meta.get("next_token")
            # (X may send an empty page that still has a next_token: follow it.)
            token = next_token if isinstance(next_token, str) and next_token else None
            if token is None:
                break
        if since is None:  # first poll: newest page only
            return items, {route.key: newest}
        if token is None:  # caught up: the cursor moves past everything read
            done = max((i for i in (since, pending, newest) if i), key=_id_order)
            return items, {route.key: done, pending_key: None, until_key: None}
        if oldest is None:  # cut short before any post: the same reading starts again
            return items, {}
        # Cut short: keep the cursor, finish the older part next poll.
        return items, {pending_key: pending or newest, until_key: oldest}

    def _page_mentions(self, body: dict[str, Any], me: Identity) -> list[RawMention]:
        data = body.get("data")
        posts = data if isinstance(data, list) else []
        includes = Includes(body.get("includes"))
        _log_partial_errors(self.name, body)
        out: list[RawMention] = []
        for post in posts:
            try:
                mention = raw_mention(self.name, post, includes, me)
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                ident = post.get("id") if isinstance(post, dict) else None
                log.warning(
                    "x source %r: skipped malformed post %s (%s)",
                    self.name,
                    str(ident)[:40] if ident else "without an id",
                    type(exc).__name__,
                )
                continue
            if mention is not None:
                out.append(mention)
        return out

    async def _identity(self) -> Identity:
        try:
            me, failed = await self.client.identity()
        except httpx.TimeoutException:
            raise self._error(f"/2/users/me: timed out after {self.config.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"/2/users/me: {failure(exc)}") from None
        if me is not None:
            return me
        assert failed is not None
        self._check(failed, "/2/users/me", app_only=False)
        raise self._error("/2/users/me: the answer holds no user id")

    async def _get(
        self, path: str, params: list[tuple[str, str]], endpoint: Endpoint, *, app_only: bool
    ) -> dict[str, Any]:
        try:
            response = await self.client.request(
                "GET", path, endpoint, params=params, app_only=app_only
            )
        except httpx.TimeoutException:
            raise self._error(f"{path}: timed out after {self.config.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"{path}: {failure(exc)}") from None
        self._check(response, path, app_only=app_only)
        try:
            body = response.json()
        except ValueError:
            raise self._error(f"{path}: answer is not JSON") from None
        if not isinstance(body, dict):
            raise self._error(f"{path}: unexpected answer (not an object)")
        if "data" not in body and "meta" not in body and body.get("errors"):
            raise self._error(f"{path}: {problem(response) or 'X answered with errors only'}")
        return body

    def _check(self, response: httpx.Response, path: str, *, app_only: bool) -> None:
        """Raise the right SourceError for a failed call (nothing for a 200)."""
        status = response.status_code
        if status == 200:
            return
        detail = problem(response)
        said = f" ({detail})" if detail else ""
        if status == 429:
            retry_after = self.client.retry_after(response)
            hint = f", retry after {retry_after:.0f}s" if retry_after is not None else ""
            raise SourceRateLimited(
                str(self._error(f"{path}: HTTP 429 Too Many Requests{hint}")),
                retry_after=retry_after,
            )
        if status == 401:
            envs = (
                self.config.bearer_token_env
                if app_only and self.client.uses_app_token
                else self.config.secret_envs
            )
            raise CredentialsRejected(
                str(
                    self._error(
                        f"X refused the keys in {envs} (revoked, regenerated or mistyped): "
                        "copy fresh ones from the app's Keys and tokens page"
                    )
                )
            )
        if status == 403:
            raise CredentialsRejected(
                str(
                    self._error(
                        f"{path}: HTTP 403{said}: the app must belong to a Project with API "
                        "access (pay-per-use credits) and its user authentication must allow Read"
                    )
                )
            )
        if status == 402:
            raise self._error(
                f"{path}: HTTP 402{said}: the X developer account is out of credits; "
                "add credits in the Developer Console"
            )
        if status == 400 and "since_id" in response.text:
            raise _StaleCursor(str(self._error(f"{path}: HTTP 400{said}")))
        if status == 404:
            raise self._error(f"{path}: HTTP 404{said} (check user_id)")
        if status >= 500:
            raise self._error(f"{path}: X server error HTTP {status}")
        raise self._error(f"{path}: HTTP {status}{said}")

    def _error(self, what: str) -> SourceError:
        return SourceError(f"x source '{self.name}': {what}")

    def _warn_budget(self, route: _Route) -> None:
        log.warning(
            "x source %r: %s calls left on %s before the rate limit; the rest waits for the "
            "next poll",
            self.name,
            self.client.budget(route.endpoint).remaining,
            route.endpoint,
        )


class Includes:
    """``includes.users`` and ``includes.tweets`` of one page, by id (bad entries ignored)."""

    def __init__(self, includes: Any) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        if not isinstance(includes, dict):
            return
        for kind, into in (("users", self.users), ("tweets", self.tweets)):
            entries = includes.get(kind)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    into[entry["id"]] = entry


def raw_mention(
    source: str, post: dict[str, Any], includes: Includes, me: Identity
) -> RawMention | None:
    """One post as a RawMention; None for the brand's own posts and for reposts."""
    post_id = _require_str(post["id"])
    if not post_id.isdigit():
        raise ValueError("id")
    author_id = _require_str(post["author_id"])
    refs = [r for r in post.get("referenced_tweets") or [] if isinstance(r, dict)]
    if author_id == me.user_id or any(r.get("type") == "retweeted" for r in refs):
        return None
    created = datetime.fromisoformat(_require_str(post["created_at"]))
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    user = includes.users.get(author_id, {})
    username = user.get("username") if isinstance(user.get("username"), str) else None
    metrics = user.get("public_metrics")
    followers = metrics.get("followers_count") if isinstance(metrics, dict) else None
    note = post.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) and note.get("text") else post["text"]
    parent = next((r.get("id") for r in refs if r.get("type") == "replied_to"), None)
    quoted = next((r.get("id") for r in refs if r.get("type") == "quoted"), None)
    context_post = includes.tweets.get(parent or quoted or "")
    context = _post_text(context_post) if context_post else None
    lang = post.get("lang")
    return RawMention(
        source=source,
        platform=PLATFORM,
        external_id=post_id,
        url=f"https://x.com/{username or 'i/web'}/status/{post_id}",
        author=Author(
            handle=username or "",
            display_name=clean_text(str(user.get("name") or ""), limit=200) or None,
            profile_url=f"https://x.com/{username}" if username else None,
            reach=followers if isinstance(followers, int) else None,
        ),
        text=clean_text(unescape(_require_str(text))),
        language=lang if isinstance(lang, str) and lang and lang != "und" else None,
        created_at=created,
        parent_ref=parent if isinstance(parent, str) else None,
        thread_context=context or None,
        answerable=answerable(post, includes, me),
    )


def answerable(post: dict[str, Any], includes: Includes, me: Identity) -> bool:
    """Whether X lets a self-serve app reply: the author @mentioned the brand account
    (``entities.mentions``) or quoted one of its posts."""
    entities = post.get("entities")
    mentions = entities.get("mentions") if isinstance(entities, dict) else None
    handle = (me.username or "").lower()
    for entry in mentions if isinstance(mentions, list) else []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("username")
        if entry.get("id") == me.user_id or (
            handle and isinstance(name, str) and name.lower() == handle
        ):
            return True
    for ref in post.get("referenced_tweets") or []:
        if isinstance(ref, dict) and ref.get("type") == "quoted":
            quoted = includes.tweets.get(str(ref.get("id")))
            if quoted is not None and quoted.get("author_id") == me.user_id:
                return True
    return False


def _post_text(post: dict[str, Any]) -> str:
    note = post.get("note_tweet")
    text = note.get("text") if isinstance(note, dict) else None
    text = text if isinstance(text, str) and text else post.get("text")
    return clean_text(unescape(text), limit=2000) if isinstance(text, str) else ""


def _page_ids(body: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Ids a page covered: its posts' ids, and ``meta.newest_id``/``oldest_id``."""
    data = body.get("data")
    ids = [p.get("id") for p in data if isinstance(p, dict)] if isinstance(data, list) else []
    ids += [meta.get("newest_id"), meta.get("oldest_id")]
    return [i for i in ids if isinstance(i, str) and i.isdigit()]


def _log_partial_errors(source: str, body: dict[str, Any]) -> None:
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        detail = first.get("detail") or first.get("title") or "unknown"
        log.info(
            "x source %r: X left out %d referenced item(s) (%s)",
            source,
            len(errors),
            clean_text(str(detail), limit=200),
        )


def _require_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def _id_order(value: str) -> tuple[int, str]:
    """X ids are snowflakes (numeric strings growing with time): longer is newer."""
    return (len(value), value)


async def signed_in_as(source: XSource) -> str:
    """The account the keys belong to (``/2/users/me``)."""
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
