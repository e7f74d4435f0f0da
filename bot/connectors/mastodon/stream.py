"""Mastodon's streaming API: mention notifications in real time, over server-sent events.

:class:`MastodonStream` keeps one ``GET /api/v1/streaming/user/notification`` open on the
instance's streaming host (``configuration.urls.streaming`` of ``/api/v2/instance``, else the
instance itself) and hands every ``mention`` notification, normalised like a polled one
(:func:`bot.connectors.mastodon.api.raw_mention`), to a callback: the source's queue. Heartbeat
comments (``:thump``) and other events are ignored; a malformed event is skipped with a log line.

A dropped or refused connection is opened again after an exponential backoff (at least a 429's
``Retry-After``); so is one silent for longer than the read timeout, and one that hit an
unexpected error (logged with its traceback). A rejected token (401), a missing scope (403) or
an instance without streaming (404) ends streaming for good with one log line: polling, which
the source keeps as a fallback, then runs alone and reports the error as it always does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from bot.connectors.mastodon.api import (
    MastodonClient,
    MastodonSourceConfig,
    raw_mention,
    source_message,
    token_rejected,
)
from bot.domain.models import RawMention

log = logging.getLogger(__name__)

STREAM_PATH = "/api/v1/streaming/user/notification"
READ_TIMEOUT = 60.0
"""Seconds of silence after which a connection counts as dead (Mastodon sends a heartbeat
comment every 15 s or so)."""
MAX_LINE = 1_000_000
"""Characters in one line or one event's data; a longer one breaks the connection."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HTTP_SCHEMES = {"wss": "https", "ws": "http", "https": "https", "http": "http"}


@dataclass(frozen=True)
class SseEvent:
    """One dispatched server-sent event."""

    event: str
    data: str


class SseParser:
    """Turns the lines of a ``text/event-stream`` into events, following the SSE rules that
    Mastodon's stream needs: ``event`` and ``data`` fields (several ``data`` lines join with a
    newline), a blank line ends an event, lines starting with ``:`` are comments. ``id`` and
    ``retry`` are ignored (Mastodon sends neither)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, line: str) -> SseEvent | None:
        """Take one line (without its line break); returns the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data, self._size = "", [], 0
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value) + 1
            if self._size > MAX_LINE:
                raise StreamBroken(f"an event longer than {MAX_LINE} characters")
            self._data.append(value)
        return None


async def sse_lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of a streamed response (CR, LF or CRLF ends one), each at most
    :data:`MAX_LINE` characters."""
    pending = ""
    async for chunk in response.aiter_text():
        text = pending + chunk
        # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
        cut = len(text) - 1 if text.endswith("\r") else len(text)
        *lines, rest = _LINE_BREAK.split(text[:cut])
        pending = rest + text[cut:]
        if len(pending) > MAX_LINE:
            raise StreamBroken(f"a line longer than {MAX_LINE} characters")
        for line in lines:
            yield line
    if pending:
        yield pending


class StreamBroken(Exception):
    """The connection must be opened again (after backoff); ``retry_after`` if the server said."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _StreamEnded(Exception):
    """Streaming cannot work until a person changes something: stop for good."""


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait before opening the stream again: ``initial`` doubling per failure in a
    row up to ``maximum``; a connection that stayed up ``stable`` seconds resets the count."""

    initial: float = 2.0
    maximum: float = 300.0
    stable: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` (≥ 1) failures in a row."""
        return float(min(self.maximum, self.initial * 2.0 ** min(failures - 1, 30)))


Deliver = Callable[[RawMention], None]


class MastodonStream:
    """One account's mention notifications, streamed (see the module docstring)."""

    def __init__(
        self,
        client: MastodonClient,
        config: MastodonSourceConfig,
        deliver: Deliver,
        *,
        backoff: Backoff | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.client = client
        self.config = config
        self.deliver = deliver
        self.backoff = backoff or Backoff()
        self.read_timeout = read_timeout
        self.ended: str | None = None
        """Why streaming stopped for good (None while it runs or waits to reconnect)."""
        self.connections = 0
        """Connections opened so far (health and tests)."""
        self.delivered = 0
        """Mentions handed to ``deliver`` so far (health and tests)."""
        self._base: str | None = None  # the streaming host, once known
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the stream task is alive (connected or waiting to reconnect)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the stream task (once; needs a running event loop)."""
        if self._task is None and self.ended is None:
            self._task = asyncio.create_task(
                self._run(), name=f"mastodon-stream:{self.config.name}"
            )

    async def aclose(self) -> None:
        """Stop the stream task and wait until it has closed its connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # unlike awaiting it, keeps a cancellation of our own
        if self.ended is None:
            self.ended = "closed"

    async def _run(self) -> None:
        """Connect, read, and reconnect after backoff until ended or cancelled."""
        failures = 0
        while True:
            opened = time.monotonic()
            retry_after: float | None = None
            try:
                await self._connect()
                reason = "the server closed the stream"
            except _StreamEnded as exc:
                self.ended = str(exc)
                log.warning("%s", exc)
                return
            except StreamBroken as exc:
                reason, retry_after = str(exc), exc.retry_after
            except httpx.HTTPError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            except Exception as exc:
                log.exception(
                    "%s", source_message(self.config, "the stream hit an unexpected error")
                )
                reason = f"unexpected error ({type(exc).__name__})"
            if time.monotonic() - opened >= self.backoff.stable:
                failures = 0
            failures += 1
            delay = max(self.backoff.delay(failures), retry_after or 0.0)
            log.warning(
                "%s", source_message(self.config, f"stream: {reason}; reconnecting in {delay:g}s")
            )
            await asyncio.sleep(delay)

    async def _connect(self) -> None:
        """One connection: read events until it ends; raises on anything but a clean end."""
        url = await self._stream_base() + STREAM_PATH
        async with self.client.stream(url, read_timeout=self.read_timeout) as response:
            self._check(response)
            response.encoding = "utf-8"  # an event stream is always UTF-8
            self.connections += 1
            log.info("%s", source_message(self.config, f"streaming mentions from {url}"))
            parser = SseParser()
            async for line in sse_lines(response):
                event = parser.feed(line)
                if event is not None and event.event == "notification":
                    self._notification(event.data)

    def _check(self, response: httpx.Response) -> None:
        """Raise unless ``response`` opened an event stream."""
        status = response.status_code
        if status == 401:
            raise _StreamEnded(str(token_rejected(self.config)))
        if status == 403:
            raise _StreamEnded(
                source_message(
                    self.config,
                    "the stream answered HTTP 403: give the token read:notifications and "
                    "read:statuses, or set streaming = false; polling goes on",
                )
            )
        if status in (404, 410):
            raise _StreamEnded(
                source_message(
                    self.config,
                    f"the instance offers no stream at {response.url} (HTTP {status}); "
                    "set streaming = false; polling goes on",
                )
            )
        if status == 429:
            raise StreamBroken(
                "rate limited (HTTP 429)", retry_after=self.client.budget.retry_after(response)
            )
        if status != 200:
            raise StreamBroken(f"HTTP {status}")
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            raise StreamBroken(f"the answer is {kind[:60] or 'untyped'}, not an event stream")

    def _notification(self, data: str) -> None:
        """Deliver the mention a ``notification`` event carries; skip others and bad ones."""
        try:
            notification = json.loads(data)
            if notification["type"] != "mention":
                return
            mention = raw_mention(self.config.name, notification["status"])
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning(
                "%s",
                source_message(
                    self.config, f"skipped a malformed notification event ({type(exc).__name__})"
                ),
            )
            return
        self.deliver(mention)
        self.delivered += 1

    async def _stream_base(self) -> str:
        """The streaming host's URL, asked once: ``configuration.urls.streaming`` (ws/wss
        mapped to http/https), else the instance itself."""
        if self._base is not None:
            return self._base
        response = await self.client.request("GET", "/api/v2/instance")
        status = response.status_code
        if status == 401:
            raise _StreamEnded(str(token_rejected(self.config)))
        if status == 200:
            self._base = self._advertised(response) or self.client.base_url
        elif status in (404, 410):  # older than Mastodon 4.0
            self._base = self.client.base_url
        # otherwise try the instance itself this time, and ask again next time
        return self._base or self.client.base_url

    def _advertised(self, response: httpx.Response) -> str | None:
        """The streaming URL an instance answer names, if usable (never a downgrade to plain
        HTTP, which would send the token unencrypted)."""
        try:
            value = response.json()["configuration"]["urls"]["streaming"]
            parts = urlsplit(value)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.netloc:
            return None
        if scheme == "http" and self.client.base_url.startswith("https://"):
            log.warning(
                "%s",
                source_message(
                    self.config, "the instance names an unencrypted streaming URL; not used"
                ),
            )
            return None
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
