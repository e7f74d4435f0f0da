"""Meta's Graph API, shared by the Facebook Page and Instagram connectors.

:class:`GraphClient` sends the access token as an ``Authorization: Bearer`` header (never in the
URL), reads the usage headers every answer carries and turns Graph's error objects
(``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``) into
:class:`GraphApiError`. Usage headers:

- ``X-App-Usage`` (and the older ``X-Page-Usage``): ``{"call_count", "total_cputime",
  "total_time"}``, each a percentage of the app's hourly allowance;
- ``X-Business-Use-Case-Usage``: ``{"<object id>": [{"type", "call_count", "total_cputime",
  "total_time", "estimated_time_to_regain_access"}]}`` (minutes) for Pages and Instagram.

The highest percentage is what counts: a poll stops early once it reaches the source's
``usage_threshold``, leaving the rest of the allowance for posting replies, and a rate-limit
error waits the time Meta estimates. :func:`source_error` and :func:`publish_error` turn a
failure into the one-line message a person reads (which environment variable to renew, which
permission to grant); the token never appears in them (:func:`scrub`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from bot.connectors.clean import clean_text
from bot.connectors.http.api_client import ApiClient, BaseUrl, json_headers
from bot.connectors.http.outbound_limits import ALLOW_PRIVATE_HELP, failure
from bot.domain.models import MAX_TEXT_CHARS
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v27.0"
"""The Graph API version used unless a source sets ``api_version``: the newest on 2026-12-04
(v27.0, released 2026-11-04). Meta releases about three versions a year and retires each about
two years after it came out (v21.0 on 2027-01-21, v22.0 on 2027-05-20); tests and docs take the
default from here."""
USAGE_MAX_AGE = 60.0
"""Seconds a usage reading counts for stopping a poll: with no call made since, it may have
dropped, and the next poll's first call reads it again."""
DEFAULT_RATE_LIMIT_WAIT = 600.0
"""Seconds to wait after a rate-limit error when no header says how long (Meta's windows roll
over an hour)."""

TOKEN_CODE = 190
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80_000, 80_100)})
"""App, user, Page, custom and business-use-case (Pages 80001, Instagram 80002…) limits."""
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
TRANSIENT_CODES = frozenset({1, 2})
MISSING_CODES = frozenset({100, 803})
"""Unknown object or field: a deleted comment or post looks like this (subcode 33)."""
KNOWN_PERMISSIONS = (
    "pages_manage_engagement",
    "pages_read_user_engagement",
    "pages_read_engagement",
    "pages_show_list",
    "pages_manage_metadata",
    "instagram_business_manage_comments",
    "instagram_business_basic",
    "instagram_manage_comments",
    "instagram_basic",
)
_TOKEN_REASONS = {
    458: "the app was removed from the account",
    459: "the account must log in to Facebook to clear a security checkpoint",
    460: "the account's password changed",
    463: "expired",
    464: "the account is not confirmed",
    467: "no longer valid",
    492: "the account lost its role on the Page",
}
_GRAPH_ID = re.compile(r"^[0-9][0-9_]{0,80}$")
_ACCESS_TOKEN_PARAM = re.compile(r"(access_token|appsecret_proof)=[^&\s\"']+", re.IGNORECASE)

Kind = Literal["token", "permission", "rate", "transient", "missing", "other"]


class GraphSettings(BaseModel):
    """Settings every Graph connector shares (the host, the version, polling limits)."""

    model_config = ConfigDict(extra="forbid")

    base_url: BaseUrl = Field(default=DEFAULT_BASE_URL, description="the Graph API host")
    allow_private: bool = Field(default=False, description=ALLOW_PRIVATE_HELP)
    api_version: str = Field(default=DEFAULT_API_VERSION, pattern=r"^v\d{1,3}\.\d{1,2}$")
    interval: float = Field(
        default=300.0, ge=10.0, le=86_400.0, description="seconds between polls"
    )
    timeout: float = Field(default=20.0, gt=0.0, le=300.0)
    recent_posts: int = Field(default=10, ge=1, le=100, description="newest posts watched")
    page_size: int = Field(default=50, ge=1, le=100, description="comments per request")
    max_pages: int = Field(default=3, ge=1, le=50, description="pages per post and poll")
    usage_threshold: float = Field(
        default=80.0, ge=10.0, le=100.0, description="usage % at which a poll stops early"
    )


class GraphUsage:
    """The usage percentages the latest answers reported, per header."""

    def __init__(self) -> None:
        self._percent: dict[str, float] = {}
        self._read_at = 0.0  # time.monotonic() of the last reading
        self._regain_at: float | None = None  # time.monotonic() when access returns

    def record(self, headers: httpx.Headers) -> None:
        """Read the usage headers of one answer (absent or unreadable ones change nothing)."""
        for name in ("x-app-usage", "x-page-usage"):
            value = _json_header(headers.get(name))
            if isinstance(value, dict):
                self._percent[name] = _highest(value)
                self._read_at = time.monotonic()
        business = _json_header(headers.get("x-business-use-case-usage"))
        if isinstance(business, dict):
            entries = [e for v in business.values() if isinstance(v, list) for e in v]
            usable = [e for e in entries if isinstance(e, dict)]
            self._percent["x-business-use-case-usage"] = max(map(_highest, usable), default=0.0)
            minutes = [
                e["estimated_time_to_regain_access"]
                for e in usable
                if _is_number(e.get("estimated_time_to_regain_access"))
            ]
            wait = max(minutes, default=0) * 60.0
            self._read_at = time.monotonic()
            self._regain_at = time.monotonic() + wait if wait > 0 else None

    @property
    def highest(self) -> float | None:
        """The highest usage percentage reported, if any header was seen."""
        return max(self._percent.values()) if self._percent else None

    @property
    def remaining(self) -> int | None:
        """Percent of the allowance left (100 minus the highest usage), for the health display."""
        highest = self.highest
        return None if highest is None else max(0, min(100, round(100 - highest)))

    def at_least(self, threshold: float) -> bool:
        """True when a recent reading reached ``threshold`` percent."""
        highest = self.highest
        if highest is None or time.monotonic() - self._read_at > USAGE_MAX_AGE:
            return False
        return highest >= threshold

    def regain_seconds(self) -> float | None:
        """Seconds until Meta lets calls through again, when it said."""
        if self._regain_at is None:
            return None
        return max(0.0, self._regain_at - time.monotonic())

    def wait_seconds(self) -> float:
        """How long to wait after a rate-limit error."""
        regain = self.regain_seconds()
        return regain if regain else DEFAULT_RATE_LIMIT_WAIT


class GraphApiError(Exception):
    """An error answer from the Graph API; the message is scrubbed and safe to show."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id

    @property
    def kind(self) -> Kind:
        """What a person (or the retry logic) should make of it."""
        code = self.code
        if code == TOKEN_CODE or (self.status == 401 and code is None):
            return "token"
        if code in RATE_LIMIT_CODES or self.status == 429:
            return "rate"
        if code in PERMISSION_CODES or (self.status == 403 and code is None):
            return "permission"
        if code in TRANSIENT_CODES or self.status >= 500 or self.status == 0:
            return "transient"
        if code in MISSING_CODES or self.status in (404, 410):
            return "missing"
        return "other"

    @property
    def label(self) -> str:
        """``Graph error 190/463`` or ``HTTP 502``."""
        if self.code is None:
            return "no answer" if self.status == 0 else f"HTTP {self.status}"
        sub = f"/{self.subcode}" if self.subcode else ""
        return f"Graph error {self.code}{sub}"

    def permission(self, default: str) -> str:
        """The permission Meta's message names, else ``default`` (what the call needs)."""
        found = [p for p in KNOWN_PERMISSIONS if p in self.message]
        return found[0] if found else default


class GraphClient(ApiClient):
    """Authenticated calls to one Graph API host and version, with the usage it reports."""

    def __init__(
        self,
        base_url: str,
        api_version: str,
        token: str,
        *,
        timeout: float = 20.0,
        client: httpx.AsyncClient | None = None,
        app_secret: str = "",
        allow_private: bool = False,
    ) -> None:
        if not token:
            raise ValueError("a Graph API access token is required")
        super().__init__(client, timeout=timeout, allow_private=allow_private)
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.usage = GraphUsage()
        self._token = token
        self._headers = json_headers(token)
        # With the App Secret known, every call carries its proof, so apps that turned on
        # "Require App Secret" work (and a stolen token alone is useless to others).
        self._proof = (
            {"appsecret_proof": hmac.new(app_secret.encode(), token.encode(), "sha256").hexdigest()}
            if app_secret
            else {}
        )

    def credential(self, token_env: str) -> str:
        """Names this client's token without revealing it (sources sharing a token in the same
        variable share it): the variable and a fingerprint of the value."""
        return f"{token_env}:{hashlib.sha256(self._token.encode()).hexdigest()[:16]}"

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """``GET /{version}{path}``; the JSON object, or GraphApiError."""
        return await self.request("GET", path, params=params)

    async def post(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        """``POST /{version}{path}`` with a form body; the JSON object, or GraphApiError."""
        return await self.request("POST", path, data=data)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One call. Transport failures and error answers both raise GraphApiError (a
        transport failure has status 0 and counts as transient)."""
        url = f"{self.base_url}/{self.api_version}{path}"
        query = {**(params or {}), **self._proof} or None
        try:
            response = await self._client.request(
                method, url, params=query, data=data, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise GraphApiError(f"timed out after {self._timeout:g}s", status=0) from None
        except httpx.HTTPError as exc:
            raise GraphApiError(f"{failure(exc)}", status=0) from None
        self.usage.record(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            raise self._api_error(response.status_code, body["error"])
        if response.status_code != 200:
            phrase = response.reason_phrase or ""
            message = f"HTTP {response.status_code} {phrase}".rstrip()
            raise GraphApiError(message, status=response.status_code)
        if not isinstance(body, dict):
            raise GraphApiError("the answer is not a JSON object", status=502)
        return body

    def scrub(self, text: str) -> str:
        """``text`` without this client's token or any ``access_token=`` value."""
        return scrub(text, self._token)

    def _api_error(self, status: int, error: dict[str, Any]) -> GraphApiError:
        code = error.get("code")
        subcode = error.get("error_subcode")
        trace = error.get("fbtrace_id")
        message = self.scrub(clean_text(str(error.get("message") or ""), limit=300))
        return GraphApiError(
            message or "no message",
            status=status,
            code=code if isinstance(code, int) else None,
            subcode=subcode if isinstance(subcode, int) else None,
            fbtrace_id=trace if isinstance(trace, str) else None,
        )


def page_of(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A list answer's items (non-objects dropped) and the ``after`` cursor of the next page,
    None on the last page (Graph sends ``paging.next`` only when there is one)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise GraphApiError("the answer has no 'data' list", status=502)
    items = [item for item in data if isinstance(item, dict)]
    paging = body.get("paging")
    after = None
    if isinstance(paging, dict) and paging.get("next"):
        cursors = paging.get("cursors")
        if isinstance(cursors, dict) and isinstance(cursors.get("after"), str):
            after = cursors["after"] or None
    return items, after


def scrub(text: str, token: str) -> str:
    """Remove the token and any ``access_token=``/``appsecret_proof=`` value from ``text``."""
    if token:
        text = text.replace(token, "[token]")
    return _ACCESS_TOKEN_PARAM.sub(r"\1=[removed]", text)


def source_error(
    exc: GraphApiError,
    where: str,
    *,
    token_env: str,
    permission: str,
    usage: GraphUsage,
    credential: str | None = None,
) -> SourceError:
    """The SourceError a poll raises for ``exc`` (``where`` starts the message); a refused
    token names ``credential`` (see :meth:`GraphClient.credential`)."""
    if exc.kind == "token":
        return CredentialsRejected(
            f"{where}: {token_message(exc, token_env)}", credential=credential
        )
    if exc.kind == "permission":
        return CredentialsRejected(
            f"{where}: {permission_message(exc, token_env, permission)}", credential=credential
        )
    if exc.kind == "rate":
        wait = usage.wait_seconds()
        return SourceRateLimited(
            f"{where}: Meta's rate limit was reached ({exc.label}); polling waits {wait:.0f}s",
            retry_after=wait,
        )
    if exc.kind == "transient":
        return SourceError(f"{where}: Meta is not answering properly ({exc.label}: {exc.message})")
    return SourceError(f"{where}: {exc.label}: {exc.message}{_trace(exc)}")


def publish_error(
    exc: GraphApiError, platform: str, *, token_env: str, permission: str, usage: GraphUsage
) -> PublishError:
    """The PublishError a reply attempt raises for ``exc``."""
    if exc.kind == "token":
        return PublishError(f"{platform}: {token_message(exc, token_env)}", permanent=True)
    if exc.kind == "permission":
        return PublishError(
            f"{platform}: {permission_message(exc, token_env, permission)}", permanent=True
        )
    if exc.kind == "rate":
        return PublishError(
            f"{platform}: Meta's rate limit was reached ({exc.label}); retrying later",
            retry_after=usage.wait_seconds(),
        )
    if exc.kind == "transient":
        return PublishError(f"{platform}: Meta is not answering properly ({exc.label})")
    if exc.kind == "missing":
        return PublishError(
            f"{platform}: the comment or post was deleted or is no longer visible ({exc.label})",
            permanent=True,
        )
    return PublishError(f"{platform}: {exc.label}: {exc.message}{_trace(exc)}", permanent=True)


def token_message(exc: GraphApiError, token_env: str) -> str:
    """What to do about a refused token (Graph error 190)."""
    reason = _TOKEN_REASONS.get(exc.subcode or 0, "revoked or invalid")
    return (
        f"Meta refused the access token in {token_env} ({reason}; {exc.label}): create a new "
        f"long-lived Page token as docs/meta.md explains, set {token_env}=… in .env and "
        "restart Parley"
    )


def permission_message(exc: GraphApiError, token_env: str, permission: str) -> str:
    """What to do about a missing permission (Graph errors 10, 200-299, 3)."""
    needed = exc.permission(permission)
    return (
        f"the token in {token_env} lacks the {needed} permission ({exc.label}); add "
        f"{needed} to the app's permissions, make a new token with it (docs/meta.md) and "
        "restart Parley"
    )


def graph_id(value: Any) -> str:
    """A Graph object id (digits, ``_`` between parts), safe to put in a path; else ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _GRAPH_ID.match(value):
        raise ValueError("not a Graph object id")
    return value


def parse_time(value: Any) -> datetime | None:
    """Graph's ``2026-01-05T09:30:00+0000`` (or unix seconds, as webhooks send) in UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def text_of(value: Any, *, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` as clean text if it is a string, else "" (Graph fields are untrusted input)."""
    return clean_text(value, limit=limit) if isinstance(value, str) else ""


def http_url(value: Any) -> str | None:
    """``value`` if it is an http(s) URL (a platform's permalink is untrusted input)."""
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 4096:
        return value
    return None


@dataclass(frozen=True)
class Watermark:
    """A route's position: the newest creation time read, and the ids read at that instant
    (several items can share one second). Stored in the cursor as ``<iso time>|<id>,<id>``;
    an empty value means the route is known and was empty."""

    at: datetime | None = None
    ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str | None) -> Watermark | None:
        """The watermark a cursor holds; None for a route never read."""
        if value is None:
            return None
        when, _, ids = value.partition("|")
        at = parse_time(when) if when else None
        return cls(at, frozenset(i for i in ids.split(",") if i) if at else frozenset())

    def dump(self) -> str:
        """The cursor value."""
        if self.at is None:
            return ""
        return f"{self.at.isoformat()}|{','.join(sorted(self.ids))}"

    def is_old(self, created: datetime, item_id: str) -> bool:
        """True when the item was read before (at or behind the watermark)."""
        if self.at is None:
            return False
        return created < self.at or (created == self.at and item_id in self.ids)

    def advance(self, read: list[tuple[datetime, str]]) -> Watermark:
        """The watermark once the new items in ``read`` have been taken."""
        if not read:
            return self
        newest = max(created for created, _ in read)
        if self.at is not None and self.at > newest:
            return self
        ids = {item_id for created, item_id in read if created == newest}
        if self.at == newest:
            ids |= self.ids
        return Watermark(newest, frozenset(ids))


def _trace(exc: GraphApiError) -> str:
    return f" (fbtrace_id {exc.fbtrace_id})" if exc.fbtrace_id else ""


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        log.debug("unreadable Graph usage header %r", value[:200])
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _highest(usage: dict[str, Any]) -> float:
    values = [
        float(usage[k])
        for k in ("call_count", "total_cputime", "total_time")
        if _is_number(usage.get(k))
    ]
    return max(values, default=0.0)
