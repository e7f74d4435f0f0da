"""Shared fixtures: loopback-only network guard, a real SQLite store, a wired core, and the
fake servers several modules talk to (a fake model, a fake Graph API, a mastodon-mock process)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tzlocal

from bot import localtime
from bot.app import Core, build_core
from bot.config import ParleyConfig, parse_config
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.store import Store
from fakes import mastodon_mock
from fakes.graph import FakeGraph, serve
from fakes.mastodon_mock import MastodonMock
from fakes.openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(address: Any) -> None:
    if not _is_local(address):
        raise AssertionError(f"test tried to reach {address!r} beyond loopback")


def _connect(self: socket.socket, address: Any) -> Any:
    _refuse(address)
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> Any:
    _refuse(address)
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> Any:
    _refuse(args[-1])  # sendto(data, address) or sendto(data, flags, address)
    return _real_sendto(self, data, *args)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None:
        _refuse((host, 0))
    return _real_getaddrinfo(host, *args, **kwargs)


def _gethostbyname(host: str) -> str:
    _refuse((host, 0))
    return _real_gethostbyname(host)


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail any test, or fixture of any scope, that reaches for an address beyond loopback
    (connecting, sending a datagram or resolving a name), for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _connect)
        patch.setattr(socket.socket, "connect_ex", _connect_ex)
        patch.setattr(socket.socket, "sendto", _sendto)
        patch.setattr(socket, "getaddrinfo", _getaddrinfo)
        patch.setattr(socket, "gethostbyname", _gethostbyname)
        yield


@pytest.fixture(autouse=True)
def utc_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times are shown in UTC whatever the machine's zone (a test may set PARLEY_TIMEZONE)."""
    monkeypatch.setattr(tzlocal, "get_localzone", lambda: ZoneInfo("UTC"))
    localtime.set_zone(ZoneInfo("UTC"))


BASIC_CONFIG: dict[str, Any] = {
    "brands": [
        {
            "name": "acme",
            "display_name": "Acme Cloud",
            "rules": [
                {"name": "outage", "query": "acme (down OR outage OR refund)", "urgent": True},
                {"name": "product", "query": '"acme cloud" OR acme -job -jobs'},
            ],
        },
        {
            "name": "globex",
            "rules": [{"name": "any", "query": "globex"}],
        },
    ],
}


@pytest.fixture
def config() -> ParleyConfig:
    """Two brands with a few rules and no sources."""
    return parse_config(BASIC_CONFIG, "test.toml")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a temporary database, with the repository's prompts."""
    return Settings(
        _env_file=None,
        parley_db_path=tmp_path / "parley.db",
        parley_prompts_dir=ROOT / "prompts",
        parley_default_publisher="log",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real, migrated SQLite store in a temporary file."""
    async with Database.open(tmp_path / "store.db") as db:
        yield Store(db)


@pytest.fixture
async def core(settings: Settings, config: ParleyConfig) -> AsyncIterator[Core]:
    """Every core service wired on a temporary database."""
    async with build_core(settings, config) as built:
        yield built


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on loopback (it obeys what leaks outside the fences)."""
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraph, str]]:
    """A fresh fake Graph API on loopback, and its base URL."""
    fake = FakeGraph()
    async with serve(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def mastodon_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MastodonMock]:
    """One mastodon-mock process for the test module, terminated at its end however it ends;
    the tests that need it fail with the server's log when it cannot start (never a skip)."""
    try:
        process, server = mastodon_mock.start(tmp_path_factory.mktemp("mastodon-mock"))
    except mastodon_mock.MastodonMockFailed as failure:
        pytest.fail(str(failure), pytrace=False)
    try:
        yield server
    finally:
        mastodon_mock.stop(process)


@pytest.fixture
async def mastodon(mastodon_instance: MastodonMock) -> MastodonMock:
    """The module's mastodon-mock instance, reset to the seed for this test."""
    await mastodon_instance.reset()
    return mastodon_instance
