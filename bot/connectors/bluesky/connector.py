"""Bluesky connector: post search and notifications as a source; replies as a publisher.

Everything goes through XRPC on the account's PDS with one app-password session
(``createSession``, limited to 30 per 5 minutes): the access token is reused across polls and
renewed with ``refreshSession`` when the PDS answers ``ExpiredToken``; a new session is created
only when the refresh token is dead too.

The source runs one route per search query (``searchPosts``, ``sort=latest``, ``since`` = the
newest post time seen) plus mention/reply/quote notifications (cursor: newest ``indexedAt``).
A route never seen before takes only its newest page; the core's look-back rule does the rest.
Authors' follower counts come from ``getProfiles`` (25 per call) and parents' text from
``getPosts`` (25 per call), both batched once per poll.

The publisher posts with ``createRecord`` and a ``reply`` whose parent is the mention and whose
root is the mention's own root; after a crash it looks for its reply in the parent's thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.connectors.base import ClientSource, Cursor, FetchResult, PublishResult, SourceName
from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import ApiClient, BaseUrl, json_headers
from bot.connectors.http.budget import RateBudget
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP, failure
from bot.domain.limits import grapheme_count
from bot.domain.models import Author, Mention, RawMention, Reply
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
REPLY_LIMIT = 300
"""The longest post, in graphemes (what a reader sees as one character)."""
PASSWORD_ENV = "BLUESKY_APP_PASSWORD"
MAX_POST_BYTES = 3000
BATCH = 25
"""``getProfiles`` and ``getPosts`` take at most 25 actors / URIs per call."""
NOTIFICATION_REASONS = ("mention", "reply", "quote")

_POST_URI = re.compile(r"at://([^/\s]+)/app\.bsky\.feed\.post/([A-Za-z0-9._:~-]{1,512})")
_LINK = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?'\")]"


class BlueskySourceConfig(BaseModel):
    """One Bluesky account (``[[sources]]`` with ``type = "bluesky"``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["bluesky"]
    name: SourceName
    base_url: BaseUrl = Field(default="https://bsky.social", description="the account's PDS")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)
    identifier: str = Field(
        min_length=1, max_length=256, description="the account's handle (or its e-mail)"
    )
    password_env: str = Field(
        default=PASSWORD_ENV, description="environment variable holding the app password"
    )
    interval: float = Field(default=120.0, ge=10.0, le=86_400.0)
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    queries: list[str] = Field(default_factory=list, max_length=20, description="searchPosts q")
    notifications: bool = Field(default=True, description="poll mention/reply/quote")
    page_size: int = Field(default=50, ge=1, le=100)
    max_pages: int = Field(default=3, ge=1, le=20, description="pages per route and poll")
    reach: bool = Field(default=True, description="look up authors' follower counts")
    thread_context: bool = Field(default=True, description="fetch the parent post of replies")

    @field_validator("queries")
    @classmethod
    def _queries(cls, values: list[str]) -> list[str]:
        queries = [v.strip() for v in values]
        if any(not q or len(q) > 500 for q in queries):
            raise ValueError("search queries must be 1 to 500 characters")
        return queries


class BlueskyAuthError(CredentialsRejected):
    """The PDS refused the identifier or app password (the message says what to check)."""


class BlueskyClient(ApiClient):
    """XRPC calls with one reused, refreshed session and the latest rate-limit budget."""

    def __init__(
        self,
        base_url: str,
        identifier: str,
        password: str,
        *,
        timeout: float = 20.0,
        client: httpx.AsyncClient | None = None,
        password_env: str = PASSWORD_ENV,
        allow_private: bool = False,
    ) -> None:
        if not password:
            raise ValueError(f"a Bluesky app password is required (set {password_env})")
        super().__init__(client, timeout=timeout, allow_private=allow_private)
        self.base_url = base_url.rstrip("/")
        self._identifier = identifier
        self._password = password
        self.password_env = password_env
        self._access: str | None = None
        self._refresh: str | None = None
        self._lock = asyncio.Lock()
        self.did: str | None = None
        self.handle: str | None = None
        self.budget = RateBudget()

    async def get(self, nsid: str, params: list[tuple[str, str]]) -> httpx.Response:
        """An authenticated query; raises httpx.HTTPError on transport failure."""
        return await self._authed("GET", nsid, params=params)

    async def post(self, nsid: str, body: dict[str, Any]) -> httpx.Response:
        """An authenticated procedure; raises httpx.HTTPError on transport failure."""
        return await self._authed("POST", nsid, body=body)

    async def ensure_session(self) -> str:
        """The account's DID, creating the session on first use."""
        async with self._lock:
            if self._access is None:
                await self._create_session()
        assert self.did is not None
        return self.did

    async def _authed(
        self,
        method: str,
        nsid: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        await self.ensure_session()
        token = self._access
        response = await self._raw(method, nsid, params=params, body=body, token=token)
        if response.status_code in (400, 401) and _error_name(response) == "ExpiredToken":
            async with self._lock:
                if self._access == token:  # no other task renewed it meanwhile
                    await self._renew()
            response = await self._raw(method, nsid, params=params, body=body, token=self._access)
        return response

    async def _raw(
        self,
        method: str,
        nsid: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        token: str | None,
    ) -> httpx.Response:
        response = await self._client.request(
            method,
            f"{self.base_url}/xrpc/{nsid}",
            params=tuple(params) if params else None,
            json=body,
            headers=json_headers(token),
            timeout=self._timeout,
        )
        remaining = response.headers.get("ratelimit-remaining", "")
        if remaining.isdigit():  # ratelimit-reset is a unix time
            reset = response.headers.get("ratelimit-reset", "")
            reset_in = int(reset) - datetime.now(UTC).timestamp() if reset.isdigit() else None
            self.budget.record(int(remaining), reset_in)
        return response

    async def _create_session(self) -> None:
        body = {"identifier": self._identifier, "password": self._password}
        response = await self._raw(
            "POST", "com.atproto.server.createSession", body=body, token=None
        )
        if response.status_code == 429:
            wait = self.budget.retry_after(response)
            hint = f", retry after {wait:g}s" if wait is not None else ""
            raise SourceRateLimited(
                f"bluesky: too many logins (createSession is limited to 30 per 5 minutes){hint}",
                retry_after=wait,
            )
        if response.status_code in (400, 401):
            raise BlueskyAuthError(
                f"bluesky: the PDS refused {self._identifier!r} ({_api_error(response)}); "
                f"check {self.password_env} (an app password) and the identifier"
            )
        if response.status_code != 200:
            raise SourceError(f"bluesky: createSession failed ({_api_error(response)})")
        self._store_session(response)

    async def _renew(self) -> None:
        """Refresh the session; log in again if the refresh token is no longer valid."""
        if self._refresh is not None:
            response = await self._raw(
                "POST", "com.atproto.server.refreshSession", token=self._refresh
            )
            if response.status_code == 200:
                self._store_session(response)
                return
            log.info("bluesky: refreshSession refused (%s); logging in again", _api_error(response))
        self._access = self._refresh = None
        await self._create_session()

    def _store_session(self, response: httpx.Response) -> None:
        data = _json(response)
        access, refresh, did = data.get("accessJwt"), data.get("refreshJwt"), data.get("did")
        if not (isinstance(access, str) and isinstance(refresh, str) and isinstance(did, str)):
            raise SourceError("bluesky: the PDS sent a session without tokens")
        self._access, self._refresh, self.did = access, refresh, did
        handle = data.get("handle")
        self.handle = handle if isinstance(handle, str) else self.handle


class BlueskySource(ClientSource[BlueskySourceConfig, BlueskyClient]):
    """Polls searchPosts per query and the account's notifications (see the module docstring)."""

    @classmethod
    def create(
        cls, config: BlueskySourceConfig, password: str, *, http: httpx.AsyncClient | None = None
    ) -> BlueskySource:
        """A source with its own session client (``password`` from ``config.password_env``)."""
        client = BlueskyClient(
            config.base_url,
            config.identifier,
            password,
            timeout=config.timeout,
            client=http,
            password_env=config.password_env,
            allow_private=config.allow_private,
        )
        return cls(config, client)

    @property
    def rate_limit_remaining(self) -> int | None:
        """Calls left in the PDS's current window, as last reported."""
        return self.client.budget.remaining

    async def fetch(self, cursor: Cursor) -> FetchResult:
        """New posts from every route; the cursor keeps each route's newest time."""
        try:
            own_did = await self.client.ensure_session()
            new_cursor = dict(cursor)
            posts: dict[str, dict[str, Any]] = {}
            for query in self.config.queries:
                key = f"q:{query}"
                found, newest = await self._search(query, cursor.get(key))
                posts.update((p["uri"], p) for p in found)
                if newest:
                    new_cursor[key] = newest
            if self.config.notifications:
                found, newest = await self._notifications(cursor.get("notifications"))
                posts.update((p["uri"], p) for p in found)
                if newest:
                    new_cursor["notifications"] = newest
            posts = {u: p for u, p in posts.items() if p["author"].get("did") != own_did}
            reach = await self._reach(list(posts.values())) if self.config.reach else {}
            parents = await self._parents(list(posts.values()))
        except httpx.HTTPError as exc:
            raise self._error(f"{failure(exc)}") from None
        items = [_raw_mention(self.name, p, reach, parents) for p in posts.values()]
        return FetchResult(items=items, cursor=new_cursor)

    async def _search(self, query: str, since: str | None) -> tuple[list[dict[str, Any]], str]:
        params = [("q", query), ("sort", "latest"), ("limit", str(self.config.page_size))]
        if since:
            params.append(("since", since))
        posts: list[dict[str, Any]] = []
        page: str | None = None
        # Unknown route: newest page only; known route: page on until `since` is reached.
        for _ in range(self.config.max_pages if since else 1):
            body = await self._call("app.bsky.feed.searchPosts", params, page)
            posts += self._valid(body.get("posts"), "search result")
            page = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if not page:
                break
        newest = max((_sort_at(p) for p in posts), default=since or "")
        return posts, newest

    async def _notifications(self, seen: str | None) -> tuple[list[dict[str, Any]], str]:
        params = [("limit", str(self.config.page_size))]
        params += [("reasons", r) for r in NOTIFICATION_REASONS]
        posts: list[dict[str, Any]] = []
        newest = seen or ""
        page: str | None = None
        for _ in range(self.config.max_pages if seen else 1):
            body = await self._call("app.bsky.notification.listNotifications", params, page)
            raw = body.get("notifications")
            entries = [n for n in raw if isinstance(n, dict)] if isinstance(raw, list) else []
            reached = False
            for entry in entries:
                when = _parse_time(entry.get("indexedAt"))
                if when is not None:
                    newest = max(newest, _iso(when))
                    reached = reached or (seen is not None and _iso(when) <= seen)
                if entry.get("reason") not in NOTIFICATION_REASONS or reached:
                    continue
                post = {k: entry.get(k) for k in ("uri", "cid", "author", "record", "indexedAt")}
                posts += self._valid([post], "notification")
            page = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if reached or not page:
                break
        return posts, newest

    async def _call(
        self, nsid: str, params: list[tuple[str, str]], page: str | None
    ) -> dict[str, Any]:
        response = await self.client.get(nsid, params + ([("cursor", page)] if page else []))
        status = response.status_code
        if status == 429:
            wait = self.client.budget.retry_after(response)
            hint = f", retry after {wait:g}s" if wait is not None else ""
            raise SourceRateLimited(
                str(self._error(f"HTTP 429 Too Many Requests{hint}")), retry_after=wait
            )
        if status == 401:
            raise self._error(
                f"not authorised ({_api_error(response)}); check {self.config.password_env}",
                CredentialsRejected,
            )
        if status != 200:
            raise self._error(f"{nsid}: HTTP {status} ({_api_error(response)})")
        return _json(response)

    def _valid(self, raw: Any, what: str) -> list[dict[str, Any]]:
        """The well-formed posts of a list; others are skipped with a log line."""
        good: list[dict[str, Any]] = []
        for post in raw if isinstance(raw, list) else []:
            problem = _malformed(post)
            if problem:
                log.warning(
                    "bluesky source %r: skipped a malformed %s (%s)", self.name, what, problem
                )
            else:
                good.append(post)
        return good

    async def _reach(self, posts: list[dict[str, Any]]) -> dict[str, int]:
        """Follower counts by DID; a failed batch only loses reach, never the poll."""
        dids = sorted({p["author"]["did"] for p in posts})
        counts: dict[str, int] = {}
        for start in range(0, len(dids), BATCH):
            batch = dids[start : start + BATCH]
            response = await self.client.get(
                "app.bsky.actor.getProfiles", [("actors", d) for d in batch]
            )
            if response.status_code != 200:
                log.info("bluesky source %r: getProfiles HTTP %d", self.name, response.status_code)
                break
            for profile in _json(response).get("profiles") or []:
                if isinstance(profile, dict) and isinstance(profile.get("followersCount"), int):
                    counts[str(profile.get("did"))] = profile["followersCount"]
        return counts

    async def _parents(self, posts: list[dict[str, Any]]) -> dict[str, str]:
        """Parent post text by URI, for the posts that are replies."""
        if not self.config.thread_context:
            return {}
        uris = sorted({u for p in posts if (u := _parent_uri(p))})
        texts: dict[str, str] = {}
        for start in range(0, len(uris), BATCH):
            params = [("uris", u) for u in uris[start : start + BATCH]]
            response = await self.client.get("app.bsky.feed.getPosts", params)
            if response.status_code != 200:
                log.info("bluesky source %r: getPosts HTTP %d", self.name, response.status_code)
                break
            for post in _json(response).get("posts") or []:
                if isinstance(post, dict) and not _malformed(post):
                    texts[post["uri"]] = post["record"]["text"]
        return texts

    def _error(self, what: str, kind: type[SourceError] = SourceError) -> SourceError:
        return kind(f"bluesky source '{self.name}': {what}")


class BlueskyPublisher:
    """Posts replies with createRecord; reconciles through the parent's thread."""

    def __init__(self, client: BlueskyClient, *, name: str = PLATFORM) -> None:
        self.client = client
        self.name = name

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Post ``reply`` under the mention; raises PublishError."""
        text = reply.text
        limit = REPLY_LIMIT
        if grapheme_count(text) > limit:
            raise PublishError(
                f"the reply is longer than Bluesky's {limit} characters; shorten it", permanent=True
            )
        if len(text.encode()) > MAX_POST_BYTES:
            raise PublishError(
                f"the reply is longer than Bluesky's {MAX_POST_BYTES} bytes; shorten it",
                permanent=True,
            )
        try:
            did = await self._session()
            parent = await self._parent(mention)
            ref = {"uri": parent["uri"], "cid": parent["cid"]}
            root = (parent["record"].get("reply") or {}).get("root")
            if not (isinstance(root, dict) and _is_ref(root)):
                root = ref
            record: dict[str, Any] = {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": _iso(datetime.now(UTC)),
                "reply": {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": ref},
            }
            if mention.language:
                record["langs"] = [mention.language]
            facets = link_facets(text)
            if facets:
                record["facets"] = facets
            body = {"repo": did, "collection": "app.bsky.feed.post", "record": record}
            response = await self.client.post("com.atproto.repo.createRecord", body)
        except httpx.HTTPError as exc:
            raise PublishError(f"bluesky: {failure(exc)}") from None
        if response.status_code != 200:
            raise self._failure(response, "createRecord")
        data = _json(response)
        uri = data.get("uri")
        if not isinstance(uri, str):
            raise PublishError("bluesky: createRecord answered without a post URI")
        return PublishResult(posted_id=uri, url=self._post_url(uri))

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """Parley's own reply with the same text under the parent, if the earlier send landed."""
        try:
            did = await self._session()
            response = await self.client.get(
                "app.bsky.feed.getPostThread",
                [("uri", mention.post_id), ("depth", "1"), ("parentHeight", "0")],
            )
        except httpx.HTTPError as exc:
            raise PublishError(f"bluesky: {failure(exc)}") from None
        if response.status_code == 400 and _error_name(response) == "NotFound":
            return None  # parent gone: publish will then fail permanently
        if response.status_code != 200:
            raise self._failure(response, "getPostThread")
        thread = _json(response).get("thread")
        replies = thread.get("replies") if isinstance(thread, dict) else None
        for item in replies if isinstance(replies, list) else []:
            post = item.get("post") if isinstance(item, dict) else None
            if (
                isinstance(post, dict)
                and not _malformed(post)
                and post["author"].get("did") == did
                and post["record"]["text"] == reply.text
            ):
                return PublishResult(posted_id=post["uri"], url=self._post_url(post["uri"]))
        return None

    async def _session(self) -> str:
        try:
            return await self.client.ensure_session()
        except BlueskyAuthError as exc:
            raise PublishError(str(exc), permanent=True) from None
        except SourceRateLimited as exc:
            raise PublishError(str(exc), retry_after=exc.retry_after) from None
        except SourceError as exc:
            raise PublishError(str(exc)) from None

    async def _parent(self, mention: Mention) -> dict[str, Any]:
        """The mention's post as it is now (its cid and reply root); deleted → permanent."""
        response = await self.client.get("app.bsky.feed.getPosts", [("uris", mention.post_id)])
        if response.status_code != 200:
            raise self._failure(response, "getPosts")
        posts = _json(response).get("posts")
        post = posts[0] if isinstance(posts, list) and posts else None
        if not isinstance(post, dict) or _malformed(post):
            raise PublishError("bluesky: the post was deleted; nothing to reply to", permanent=True)
        return post

    def _failure(self, response: httpx.Response, call: str) -> PublishError:
        status = response.status_code
        detail = f"bluesky: {call} HTTP {status} ({_api_error(response)})"
        if status == 429:
            return PublishError(detail, retry_after=self.client.budget.retry_after(response))
        if status >= 500 or status == 408:
            return PublishError(detail)
        if status == 401:
            return PublishError(f"{detail}; check {self.client.password_env}", permanent=True)
        return PublishError(detail, permanent=True)

    def _post_url(self, uri: str) -> str | None:
        return post_url(uri, self.client.handle)


def link_facets(text: str) -> list[dict[str, Any]]:
    """Link facets for every http(s) URL in ``text`` (offsets in UTF-8 bytes, end exclusive)."""
    facets: list[dict[str, Any]] = []
    for match in _LINK.finditer(text):
        url = match.group().rstrip(_TRAILING)
        start = len(text[: match.start()].encode())
        facets.append(
            {
                "index": {"byteStart": start, "byteEnd": start + len(url.encode())},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }
        )
    return facets


def post_url(uri: str, handle: str | None = None) -> str | None:
    """The bsky.app address of an ``at://`` post URI (by handle when known, else by DID)."""
    match = _POST_URI.fullmatch(uri)
    if match is None:
        return None
    return f"https://bsky.app/profile/{handle or match.group(1)}/post/{match.group(2)}"


def _raw_mention(
    source: str, post: dict[str, Any], reach: dict[str, int], parents: dict[str, str]
) -> RawMention:
    author, record = post["author"], post["record"]
    handle = author["handle"]
    display = author.get("displayName")
    langs = record.get("langs")
    parent = _parent_uri(post)
    context = parents.get(parent) if parent else None
    return RawMention(
        source=source,
        platform=PLATFORM,
        external_id=post["uri"],
        url=post_url(post["uri"], handle),
        author=Author(
            handle=handle,
            display_name=clean_text(display, limit=200) or None
            if isinstance(display, str)
            else None,
            profile_url=f"https://bsky.app/profile/{handle}",
            reach=reach.get(author["did"]),
        ),
        text=clean_text(record["text"]),
        language=langs[0]
        if isinstance(langs, list) and langs and isinstance(langs[0], str)
        else None,
        created_at=_parse_time(record.get("createdAt")) or _parse_time(post.get("indexedAt")),
        parent_ref=parent,
        thread_context=clean_text(context) if context else None,
    )


def _malformed(post: Any) -> str | None:
    """Why a postView cannot be used, or None."""
    if not isinstance(post, dict):
        return "not an object"
    if not isinstance(post.get("uri"), str) or not _POST_URI.fullmatch(post["uri"]):
        return "no post uri"
    author, record = post.get("author"), post.get("record")
    if not isinstance(author, dict) or not all(
        isinstance(author.get(k), str) for k in ("did", "handle")
    ):
        return f"no author in {post['uri']}"
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return f"no text in {post['uri']}"
    if not isinstance(post.get("cid"), str):
        return f"no cid in {post['uri']}"
    return None


def _parent_uri(post: dict[str, Any]) -> str | None:
    reply = post["record"].get("reply")
    parent = reply.get("parent") if isinstance(reply, dict) else None
    return parent["uri"] if isinstance(parent, dict) and _is_ref(parent) else None


def _is_ref(value: dict[str, Any]) -> bool:
    return isinstance(value.get("uri"), str) and isinstance(value.get("cid"), str)


def _sort_at(post: dict[str, Any]) -> str:
    """searchPosts' ``since`` compares sortAt: the earlier of createdAt and indexedAt."""
    times = [
        t
        for t in (_parse_time(post["record"].get("createdAt")), _parse_time(post.get("indexedAt")))
        if t is not None
    ]
    return _iso(min(times)) if times else ""


def _iso(when: datetime) -> str:
    """One fixed format, so cursor times compare correctly as strings too."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_name(response: httpx.Response) -> str:
    error = _json(response).get("error")
    return error if isinstance(error, str) else ""


def _api_error(response: httpx.Response) -> str:
    """XRPC's ``error: message`` on one short line (never request headers, so never a token)."""
    data = _json(response)
    parts = [str(data[k]) for k in ("error", "message") if isinstance(data.get(k), str)]
    return (": ".join(parts) or response.reason_phrase or str(response.status_code))[:200]


async def signed_in_as(source: BlueskySource) -> str:
    """The handle the app password belongs to (``createSession``)."""
    did = await source.client.ensure_session()
    return f"signed in as @{source.client.handle or did}"
