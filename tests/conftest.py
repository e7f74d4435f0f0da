"""Shared fixtures: loopback-only network guard, a real SQLite store, a wired core."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, build_core
from bot.config import ParleyConfig, parse_config
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.repo import Store

ROOT = Path(__file__).resolve().parent.parent

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that reaches for an address beyond loopback."""

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise AssertionError(f"test tried to reach {address!r} beyond loopback")
        return _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise AssertionError(f"test tried to reach {address!r} beyond loopback")
        return _real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local((name, 0)):
            raise AssertionError(f"test tried to resolve {name!r}")
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


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
        _env_file=None,  # type: ignore[call-arg]
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
