"""The `mastodon-mock` package run as a real server process, for tests that talk to Mastodon.

:func:`start` runs ``python -m mastodon_mock serve --in-memory --host 127.0.0.1 --port N
--config FILE`` on a free loopback port, with a config that seeds two accounts and their access
tokens: the brand (``@acme``, whose token Parley uses) and a customer (``@dana``). It waits until
the instance answers and raises :class:`MastodonMockFailed` with the server's log when it cannot
start; :func:`stop` always terminates the process. The ``mastodon_instance`` and ``mastodon``
fixtures in tests/conftest.py run one instance per test module and reset it for each test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BRAND = "acme"
CUSTOMER = "dana"
BRAND_TOKEN = "parley-brand-token-0123456789"
CUSTOMER_TOKEN = "customer-token-9876543210"
STARTUP_TIMEOUT = 30.0
"""Seconds to wait for the instance to answer (it starts in about 2 s on an idle machine)."""

SEED_CONFIG = f"""
[seed]
accounts = [
  {{ username = "{BRAND}", display_name = "Acme Cloud", access_token = "{BRAND_TOKEN}" }},
  {{ username = "{CUSTOMER}", display_name = "Dana", access_token = "{CUSTOMER_TOKEN}" }},
]
"""


@dataclass(frozen=True)
class MastodonMock:
    """A running mastodon-mock instance and the calls tests make on it as its users."""

    base_url: str

    async def call(self, method: str, path: str, token: str = BRAND_TOKEN, **kwargs: Any) -> Any:
        """One API call as a user (the brand unless `token` says otherwise); asserts a 200."""
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as http:
            response = await http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()

    async def reset(self) -> None:
        """Back to the seed: only the two accounts, no statuses, no fault rules."""
        await self.call("POST", "/api/v1/_mock/reset")

    async def post(
        self, text: str, *, token: str = CUSTOMER_TOKEN, **fields: Any
    ) -> dict[str, Any]:
        """A status posted through the API (by the customer unless ``token`` says otherwise)."""
        body = {"status": text, **fields}
        status: dict[str, Any] = await self.call("POST", "/api/v1/statuses", token, json=body)
        return status

    async def replies_to(self, status_id: str) -> list[dict[str, Any]]:
        """The statuses under ``status_id`` (``/api/v1/statuses/{id}/context`` descendants)."""
        context = await self.call("GET", f"/api/v1/statuses/{status_id}/context")
        descendants: list[dict[str, Any]] = context["descendants"]
        return descendants

    async def account(self, token: str = BRAND_TOKEN) -> dict[str, Any]:
        """The token's own account (``verify_credentials``)."""
        path = "/api/v1/accounts/verify_credentials"
        account: dict[str, Any] = await self.call("GET", path, token)
        return account

    async def fault(
        self, path: str, effect: dict[str, Any], *, method: str = "GET", count: int = 1
    ) -> None:
        """Answer the next ``count`` requests to ``path`` with ``effect`` (the mock's faults)."""
        rule = {"match": {"methods": [method], "path": path}, "effect": effect, "count": count}
        await self.call("POST", "/api/v1/_mock/faults", json=rule)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class MastodonMockFailed(Exception):
    """The instance did not start; the message says why and ends with its output."""


def start(folder: Path) -> tuple[subprocess.Popen[bytes], MastodonMock]:
    """Start an instance seeded with the two accounts (its config and log go in ``folder``) and
    wait until it answers; raises :class:`MastodonMockFailed` with its output otherwise."""
    config = folder / "mastodon_mock.toml"
    config.write_text(SEED_CONFIG, encoding="utf-8")
    log = folder / "server.log"
    for _attempt in range(3):  # another process may take the probed port before the server
        port = _free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mastodon_mock", "serve", "--in-memory"),
                    *("--host", "127.0.0.1", "--port", str(port), "--config", str(config)),
                    *("--log-level", "warning"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = MastodonMock(f"http://127.0.0.1:{port}")
        try:
            if _ready(server, process):
                return process, server
        except BaseException:  # Ctrl-C while waiting: still never leave it running
            stop(process)
            raise
        exit_code = process.poll()
        stop(process)
        output = log.read_text(errors="replace")
        if "address already in use" not in output.lower():
            break
    how = (
        f"did not answer within {STARTUP_TIMEOUT:g}s"
        if exit_code is None
        else f"exited with code {exit_code}"
    )
    tail = "\n".join(output.strip().splitlines()[-15:]) or "(no output)"
    raise MastodonMockFailed(
        f"mastodon-mock on 127.0.0.1:{port} {how}; is it installed (pip install -e '.[test]')? "
        f"Its output ends:\n{tail}"
    )


def _ready(server: MastodonMock, process: subprocess.Popen[bytes]) -> bool:
    """Whether the instance answers ``/api/v1/instance`` before it exits or the time is up."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(server.base_url + "/api/v1/instance", timeout=1.0).is_success:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server (SIGTERM, then SIGKILL after 5 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
