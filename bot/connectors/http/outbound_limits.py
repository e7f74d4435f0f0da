"""Outbound HTTP that a hostile server cannot hurt: every client a source or connector builds
comes from :func:`guarded_client`, which adds two limits under httpx.

* **Decompressed size.** httpx's own decoders inflate a whole chunk at once, so one small
  chunk of ``Content-Encoding: gzip, gzip`` can grow to gigabytes inside a single call. Here the
  transport decodes every layer itself (``gzip``, ``x-gzip``, ``deflate``, ``identity``; any other
  coding is refused) with ``zlib`` bounded to 64 KiB per step, counts the decoded bytes and stops
  at :data:`MAX_BODY_BYTES`. httpx then sees a plain body and decodes nothing.
* **Addresses.** The network backend resolves each host itself, refuses it when any address is
  loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254/16`` with the cloud metadata
  address, ``fe80::/10``), unspecified, multicast, shared (CGNAT ``100.64/10``) or otherwise not
  public — IPv4 forms embedded in IPv6 included — and then connects to the very address it
  checked, so a second DNS answer cannot slip in (DNS rebinding). Redirects are followed by
  httpx hop by hop, and every hop to a new host goes through the same check. A source with
  ``allow_private = true`` (a feed on the local network, a test server) skips the address check.
* **Proxies.** ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are honoured; through a proxy the
  target's name is checked as resolved here, and the proxy resolves it again (see
  :class:`_ProxiedTarget`).

Refusals are :class:`FetchRefused` errors: ``httpx.HTTPError`` subclasses, so every connector's
existing error handling catches them, with a message that is one plain line (:func:`failure`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx
from httpx._utils import get_environment_proxies  # httpx's own reading of *_PROXY variables

MAX_BODY_BYTES = 16 * 1024 * 1024
"""The most a response body may hold once decompressed."""
MAX_BODY_EXTENSION = "parley.max_body_bytes"
"""Request extension overriding the cap for one request (``None``: no total, for a long-lived
stream, whose consumer bounds each line; each decoding step stays bounded)."""
MAX_REDIRECTS = 5
ACCEPT_ENCODING = "gzip, deflate"
ALLOW_PRIVATE_HELP = (
    "fetch from loopback or private addresses (a feed on the local network, a test server)"
)

_STEP = 64 * 1024
_MAX_LAYERS = 3
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(httpx.TransportError):
    """Parley refused a response or an address; the message is one plain line."""


class BodyTooLarge(FetchRefused):
    """The body grew past its cap once decompressed."""


class PrivateAddress(FetchRefused):
    """The host points at a non-public address and the source does not allow it."""


def failure(exc: httpx.HTTPError) -> str:
    """How to name a failed request in a source's error line: Parley's own refusals in full,
    anything else by its kind (transport messages can hold URLs with secrets)."""
    if isinstance(exc, FetchRefused):
        return str(exc)
    return f"request failed ({type(exc).__name__})"


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address a source may fetch from, or None when it is."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_kind(embedded)
    if ip in _METADATA:
        return "cloud-metadata"
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("shared (CGNAT)", ip in _SHARED),
        ("private", ip.is_private),
        ("non-public", not ip.is_global or ip.is_reserved),
    ):
        if hit:
            return kind
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ``::ffff:a.b.c.d``, 6to4, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def guarded_client(
    *,
    timeout: float | httpx.Timeout,
    allow_private: bool,
    what: str = "response",
    max_bytes: int = MAX_BODY_BYTES,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An httpx client whose bodies are capped once decompressed and whose connections go
    only to public addresses (unless ``allow_private``). ``what`` names the body in errors;
    ``max_bytes`` caps it (a request may override it with :data:`MAX_BODY_EXTENSION`).

    The standard ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` variables are
    honoured as httpx itself reads them (see :class:`_ProxiedTarget` for the address check)."""
    inner = httpx.AsyncHTTPTransport()
    pool: Any = inner._pool  # httpx offers no public hook for httpcore's network backend
    pool._network_backend = _GuardedBackend(pool._network_backend, allow_private=allow_private)
    # A client given its own transport ignores the environment's proxies: mount them back.
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        pattern: None
        if proxy is None
        else _BoundedTransport(
            _ProxiedTarget(httpx.AsyncHTTPTransport(proxy=proxy), allow_private=allow_private),
            what=what,
            max_bytes=max_bytes,
        )
        for pattern, proxy in get_environment_proxies().items()
    }
    return httpx.AsyncClient(
        transport=_BoundedTransport(inner, what=what, max_bytes=max_bytes),
        mounts=mounts,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        headers={"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})},
    )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address only."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, *, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first reachable address of ``host`` once all of them are checked."""
        addresses = await _resolve(host, port)
        if not self._allow_private:
            _check(host, addresses)
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def sleep(self, seconds: float) -> None:
        """The inner backend's sleep (used between retries)."""
        await self._inner.sleep(seconds)


class _ProxiedTarget(httpx.AsyncBaseTransport):
    """Requests through a proxy, which resolves the target's name itself: the name is resolved
    and checked here first, as far as this machine can.

    The trade-off of a proxy: it may get another DNS answer than ours (rebinding), and a name
    only the proxy can resolve is passed on unchecked; an address written in the URL is
    checked exactly. The proxy's own address is configuration, never checked."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the target's addresses, then send through the proxy."""
        if not self._allow_private:
            host = request.url.host
            try:
                addresses = await _resolve(host, request.url.port or 0)
            except httpcore.ConnectError:
                addresses = []  # only the proxy can resolve it
            _check(host, addresses)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the proxy transport and its connections."""
        await self._inner.aclose()


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """``host``'s addresses (itself when it is an address), without duplicates, in order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from None
    found = [ipaddress.ip_address(str(info[4][0])) for info in infos]
    if not found:
        raise httpcore.ConnectError(f"cannot resolve {host} (no address)")
    return list(dict.fromkeys(found))


def _check(host: str, addresses: list[IPAddress]) -> None:
    for ip in addresses:
        kind = address_kind(ip)
        if kind is None:
            continue
        where = (
            f"{host} is a {kind} address"
            if _is_address(host)
            else f"{host} points at a {kind} address {ip}"
        )
        raise PrivateAddress(
            f"{where}; set allow_private = true on that source if this is intended"
        )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _BoundedTransport(httpx.AsyncBaseTransport):
    """Hands httpx an already decoded body, decoded in bounded steps and capped."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, what: str, max_bytes: int) -> None:
        self._inner = inner
        self._what = what
        self._max_bytes = max_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the inner transport; wrap the answer's body in a bounded decoder."""
        response = await self._inner.handle_async_request(request)
        limit = request.extensions.get(MAX_BODY_EXTENSION, self._max_bytes)
        codings = [
            c.strip().lower()
            for c in response.headers.get_list("content-encoding", split_commas=True)
            if c.strip() and c.strip().lower() != "identity"
        ]
        declared = response.headers.get("content-length", "")
        if limit is not None and not codings and declared.isdigit() and int(declared) > limit:
            await response.aclose()
            raise self._too_large(limit)
        skip = {"content-encoding", "content-length"} if codings else set()
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.decode().lower() not in skip],
            stream=_BoundedStream(response.stream, codings, limit, self._too_large),
            extensions=response.extensions,
        )

    def _too_large(self, limit: int) -> BodyTooLarge:
        return BodyTooLarge(
            f"{self._what} is larger than {limit // (1024 * 1024)} MB once decompressed; "
            "check that the URL is the right one"
        )

    async def aclose(self) -> None:
        """Close the inner transport and its connections."""
        await self._inner.aclose()


class _BoundedStream(httpx.AsyncByteStream):
    """The raw body decoded through its layers, counted, and cut at ``limit`` bytes."""

    def __init__(
        self,
        raw: httpx.AsyncByteStream,
        codings: list[str],
        limit: int | None,
        too_large: Callable[[int], BodyTooLarge],
    ) -> None:
        self._raw = raw
        self._codings = codings
        self._limit = limit
        self._too_large = too_large

    async def __aiter__(self) -> AsyncIterator[bytes]:
        layers: list[_Inflater] | None = None
        total = 0
        async for chunk in self._raw:
            if layers is None and chunk:
                layers = _layers(self._codings)
            for piece in _through(layers or [], chunk):
                total += len(piece)
                if self._limit is not None and total > self._limit:
                    raise self._too_large(self._limit)
                yield piece
        for piece in _drain(layers or []):
            total += len(piece)
            if self._limit is not None and total > self._limit:
                raise self._too_large(self._limit)
            yield piece

    async def aclose(self) -> None:
        await self._raw.aclose()


def _layers(codings: list[str]) -> list[_Inflater]:
    """One inflater per coding, outermost (last applied, last listed) first."""
    unknown = sorted({c for c in codings if c not in _WBITS})
    if unknown:
        raise FetchRefused(
            f"the server sent the body as {', '.join(unknown)}, which Parley cannot read "
            f"(it asks for {ACCEPT_ENCODING}); check that the URL is the right one"
        )
    if len(codings) > _MAX_LAYERS:
        raise FetchRefused(
            f"the server compressed the body {len(codings)} times; check that the URL is right"
        )
    return [_Inflater(c) for c in reversed(codings)]


def _through(layers: list[_Inflater], data: bytes) -> Iterator[bytes]:
    """``data`` decoded through every layer, in pieces of at most 64 KiB."""
    if not layers:
        if data:
            yield data
        return
    for piece in layers[0].feed(data):
        yield from _through(layers[1:], piece)


def _drain(layers: list[_Inflater]) -> Iterator[bytes]:
    """What each layer still holds once the input ended, through the layers after it."""
    for index, layer in enumerate(layers):
        for piece in layer.feed(b""):
            yield from _through(layers[index + 1 :], piece)


class _Inflater:
    """One zlib layer, never producing more than 64 KiB per call."""

    def __init__(self, coding: str) -> None:
        self._obj = zlib.decompressobj(_WBITS[coding])
        self._may_be_raw = coding == "deflate"  # some servers send raw deflate, no zlib header

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The output ``data`` (and any input held back earlier) yields, step by step."""
        out = self._first(data)
        while True:
            if out:
                yield out
            if not self._obj.unconsumed_tail and len(out) < _STEP:
                return
            out = self._step(self._obj.unconsumed_tail)

    def _first(self, data: bytes) -> bytes:
        try:
            return self._step(data)
        except httpx.DecodingError:
            if not self._may_be_raw:
                raise
            self._may_be_raw = False
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._step(data)
        finally:
            if data:
                self._may_be_raw = False

    def _step(self, data: bytes) -> bytes:
        try:
            return self._obj.decompress(data, _STEP)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the body is not valid compressed data ({exc})") from None
