"""What every HTTP server Parley opens (the inbound webhook, the Meta webhook, the Telegram
webhook) does so that no request can hurt it: answers are 4xx, never a 500 with a traceback.

* **Slow clients.** A client that sends its headers byte by byte is cut off
  :data:`HEADER_TIMEOUT` seconds after it connected (aiohttp, since aio-libs/aiohttp#13681, arms
  its keep-alive timer when the connection opens and closes a connection that has not finished
  a request by then; pyproject.toml asks for such a release); a client
  that never finishes its body is answered 408 after :data:`BODY_TIMEOUT` seconds
  (:func:`body_deadline`, a middleware that reads the body before any handler runs).
* **Timestamps** are parsed strictly (:func:`parse_timestamp`): ASCII digits only, at most 12 of
  them — ``²``, 5,000 digits or a sign are malformed, not a crash.
* **JSON** is parsed by :func:`parse_json`: valid UTF-8, nesting at most :data:`MAX_JSON_DEPTH`
  deep (checked by a cheap scan *before* ``json.loads`` could recurse), numbers Python accepts.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from itertools import accumulate
from typing import Any

from aiohttp import web

HEADER_TIMEOUT = 10.0
"""Seconds a client has, from connecting, to send a complete request line and headers (also the
idle time allowed between two requests on one connection)."""
BODY_TIMEOUT = 10.0
"""Seconds a client has, once its headers arrived, to send the whole body."""
LINGER_TIMEOUT = 2.0
"""Seconds the rest of a refused body is read and dropped before the connection closes."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays accepted in a JSON body (real payloads use < 10)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_timestamp(text: str) -> int | None:
    """Unix seconds from a header value, or None unless it is 1-12 ASCII digits."""
    stripped = text.strip()
    return int(stripped) if _TIMESTAMP.fullmatch(stripped) else None


def json_depth(body: bytes) -> int:
    """How deeply ``body``'s objects and arrays nest, without parsing it (strings skipped)."""
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0)


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """``(data, None)`` for a valid JSON body, else ``(None, why)`` with a one-line reason
    fit for a 400 answer."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"body is not UTF-8 (byte {exc.start})"
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        return None, f"JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return (
            None,
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
        )
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        return None, f"invalid JSON: {str(exc)[:100]}"


def body_deadline(max_size: int) -> Any:
    """A middleware that refuses a body declared larger than ``max_size`` (413) and reads the
    whole body within :data:`BODY_TIMEOUT` (408 otherwise; 413 past ``max_size``) before the
    handler runs, whose ``request.read()`` then returns it at once."""
    too_large = f"body is larger than {max_size} bytes"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > max_size:
            return _error(413, too_large)
        if request.body_exists:
            try:
                async with asyncio.timeout(BODY_TIMEOUT):
                    await request.read()
            except TimeoutError:
                return _error(408, f"the body did not arrive within {BODY_TIMEOUT:g}s")
            except web.HTTPRequestEntityTooLarge:
                return _error(413, too_large)
        return await handler(request)

    return middleware


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Connection": "close"})


def hardened_app(*, client_max_size: int) -> web.Application:
    """An aiohttp application whose bodies are bounded in size and time (:func:`body_deadline`)."""
    return web.Application(
        client_max_size=client_max_size, middlewares=[body_deadline(client_max_size)]
    )


def hardened_runner(app: web.Application) -> web.AppRunner:
    """An AppRunner that cuts off slow clients (:data:`HEADER_TIMEOUT`, then at most
    :data:`LINGER_TIMEOUT` after a refused body), without access log or signal handling."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=HEADER_TIMEOUT,
        lingering_time=LINGER_TIMEOUT,
    )
