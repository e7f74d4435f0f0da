"""`parley check --online` asks every configured service whether it accepts Parley.

Against the loopback fakes (Telegram Bot API, Discord REST, an OpenAI-compatible server, a
Mastodon instance): one line per service, ✔ or ✘ with what to do, never a traceback, and an
exit status that is 0 only when every answer was yes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.config import ParleyConfig, parse_config
from bot.preflight import OWN_PREFIXES
from bot.services.online_check import check_online
from bot.services.online_discord import NEEDED
from bot.services.online_runner import Outcome, Verdict, exit_status
from bot.settings import Settings
from fakes.bluesky import BOT_HANDLE, serve_fake_bluesky
from fakes.bluesky import PASSWORD as BLUESKY_PASSWORD
from fakes.discord import (
    APP_ID,
    APPROVER_ROLE_ID,
    CHANNEL_ID,
    GUILD_ID,
    MEMBER_ROLE_ID,
    FakeDiscord,
)
from fakes.loopback import serve_app
from fakes.mastodon import TOKEN as MASTODON_TOKEN
from fakes.mastodon import FakeMastodon
from fakes.openai import FakeOpenAI
from fakes.telegram import BOT_USER, FakeTelegram
from fakes.x import BRAND as X_BRAND
from fakes.x import KEYS_ENV, serve_fake_x

TELEGRAM_TOKEN = "123456:telegram-test-token"
DISCORD_TOKEN = "discord-test-token"
ALERT_CHAT = -1001234567890
BRAND_CHAT = -1009876543210
MODEL = "llama3.2"
BRAND = '[[brands]]\nname = "acme"\n[[brands.rules]]\nname = "r"\nquery = "acme"\n'
BOT_ID = int(str(BOT_USER["id"]))


@dataclass
class Fakes:
    """Every fake service, started."""

    telegram: FakeTelegram
    discord: FakeDiscord
    openai: FakeOpenAI
    mastodon: FakeMastodon
    mastodon_url: str


@pytest.fixture(autouse=True)
def own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private environment (the CLI loads .env into it), run from tmp_path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    environ["MASTODON_ACCESS_TOKEN"] = MASTODON_TOKEN
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.chdir(tmp_path)
    yield environ


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    telegram, discord, openai = (
        FakeTelegram(TELEGRAM_TOKEN),
        FakeDiscord(DISCORD_TOKEN),
        FakeOpenAI(),
    )
    openai.models = {MODEL}
    await telegram.start()
    await discord.start()
    await openai.start()
    mastodon = FakeMastodon()
    try:
        async with serve_app(mastodon.app) as url:
            yield Fakes(telegram, discord, openai, mastodon, url)
    finally:
        await openai.stop()
        await discord.stop()
        await telegram.stop()


def env(fakes: Fakes, **overrides: str) -> dict[str, str]:
    """The settings of a Parley that every fake accepts."""
    values = {
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_API_BASE_URL": fakes.telegram.base_url,
        "TELEGRAM_ALERT_CHAT_ID": str(ALERT_CHAT),
        "TELEGRAM_APPROVER_IDS": "admins",
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_BASE_URL": fakes.discord.api_url,
        "DISCORD_GUILD_ID": str(GUILD_ID),
        "DISCORD_ALERT_CHANNEL_ID": str(CHANNEL_ID),
        "DISCORD_APPROVER_ROLE_IDS": str(APPROVER_ROLE_ID),
        "OPENAI_BASE_URL": fakes.openai.base_url,
        "OPENAI_MODEL": MODEL,
    }
    values.update(overrides)
    return values


def settings_of(values: dict[str, str]) -> Settings:
    fields: dict[str, Any] = {k.lower(): v for k, v in values.items()}  # pydantic parses the text
    return Settings(_env_file=None, **fields)


def toml(fakes: Fakes, brand_chat: int | None = None) -> str:
    route = f"[brands.route]\ntelegram_chat_id = {brand_chat}\n" if brand_chat else ""
    return (
        BRAND
        + route
        + '[[sources]]\ntype = "mastodon"\nname = "masto"\n'
        + f'base_url = "{fakes.mastodon_url}"\nallow_private = true\n'
    )


def config_of(fakes: Fakes, brand_chat: int | None = None) -> ParleyConfig:
    return parse_config(tomllib.loads(toml(fakes, brand_chat)), "parley.toml")


async def ask(
    fakes: Fakes, brand_chat: int | None = None, seconds: float = 30, **overrides: str
) -> list[Verdict]:
    settings = settings_of(env(fakes, **overrides))
    return await check_online(settings, config_of(fakes, brand_chat), seconds=seconds)


def lines(verdicts: list[Verdict]) -> list[str]:
    return [v.line for v in verdicts]


def failed(verdicts: list[Verdict]) -> list[str]:
    return [v.line for v in verdicts if v.outcome in (Outcome.REFUSED, Outcome.UNREACHABLE)]


async def test_every_service_accepts_parley(fakes: Fakes) -> None:
    verdicts = await ask(fakes)
    assert failed(verdicts) == []
    assert exit_status(verdicts) == 0
    assert lines(verdicts) == [
        "✔ Telegram: bot @parley_test_bot (privacy mode on: commands and replies to the bot "
        "work, other messages in groups are not seen; @BotFather → /setprivacy to change)",
        f"✔ Telegram chat 'Community team' ({ALERT_CHAT}): @parley_test_bot is a member and "
        "can post",
        f"✔ Discord: signed in as bot Parley ({APP_ID})",
        "✔ Discord server 'Community team': the bot is a member",
        "✔ Discord channel #mentions: the bot can read, post, embed, attach and use commands",
        "✔ Discord approver roles: @approvers",
        "✔ LLM model 'llama3.2': 127.0.0.1 answered",
        "✔ source 'masto' (mastodon): signed in as @parley",
    ]
    [completion] = fakes.openai.requests
    assert completion["max_tokens"] == 1
    member_call = fakes.telegram.of("getChatMember")[0]
    assert member_call.params["user_id"] == str(BOT_USER["id"])


async def test_bot_not_in_a_brand_chat(fakes: Fakes) -> None:
    fakes.telegram.unknown_chats.add(BRAND_CHAT)
    verdicts = await ask(fakes, brand_chat=BRAND_CHAT)
    assert failed(verdicts) == [
        f"✘ Telegram chat {BRAND_CHAT}: Telegram says 'Bad Request: chat not found': add "
        "@parley_test_bot to the chat, or fix the id (send /start in the group to see it)"
    ]
    assert exit_status(verdicts) == 78


async def test_bot_that_left_the_chat(fakes: Fakes) -> None:
    fakes.telegram.members[(ALERT_CHAT, BOT_ID)] = {"status": "left"}
    assert failed(await ask(fakes)) == [
        f"✘ Telegram chat 'Community team' ({ALERT_CHAT}): @parley_test_bot is not a member: "
        "add it to the chat"
    ]


async def test_bot_that_cannot_post(fakes: Fakes) -> None:
    fakes.telegram.members[(ALERT_CHAT, BOT_ID)] = {
        "status": "restricted",
        "is_member": True,
        "can_send_messages": False,
        "until_date": 0,
    }
    assert failed(await ask(fakes)) == [
        f"✘ Telegram chat 'Community team' ({ALERT_CHAT}): @parley_test_bot cannot post: it is "
        "restricted: allow it to send messages in the chat's member settings"
    ]


async def test_discord_channel_that_denies_sending(fakes: Fakes) -> None:
    deny = NEEDED["Send Messages"] | NEEDED["Embed Links"]
    fakes.discord.overwrites = [
        {"id": str(MEMBER_ROLE_ID), "type": 0, "allow": "0", "deny": str(deny)}
    ]
    assert failed(await ask(fakes)) == [
        "✘ Discord channel #mentions: the bot lacks Send Messages, Embed Links: grant them to "
        "its role in the channel's permissions (Edit Channel → Permissions)"
    ]


async def test_discord_server_role_and_channel_that_do_not_exist(fakes: Fakes) -> None:
    verdicts = await ask(
        fakes, DISCORD_GUILD_ID="123", DISCORD_ALERT_CHANNEL_ID="456", DISCORD_APPROVER_ROLE_IDS="7"
    )
    found = failed(verdicts)
    assert [line.split(":")[0] for line in found] == [
        "✘ Discord server 123",
        "✘ Discord channel 456",
    ]
    assert "invite it with https://discord.com/oauth2/authorize?client_id=" in found[0]


async def test_missing_approver_role(fakes: Fakes) -> None:
    assert failed(await ask(fakes, DISCORD_APPROVER_ROLE_IDS=f"{APPROVER_ROLE_ID},42")) == [
        "✘ Discord approver roles: no role 42 in server 'Community team': copy the ids again "
        "(Server Settings → Roles → ⋯ → Copy Role ID) into DISCORD_APPROVER_ROLE_IDS"
    ]


async def test_unknown_model_says_ollama_pull(fakes: Fakes) -> None:
    assert failed(await ask(fakes, OPENAI_MODEL="mistral")) == [
        "✘ LLM model 'mistral': the server does not know this model (model \"mistral\" not "
        "found, try pulling it first): with Ollama run 'ollama pull mistral' on the server, or "
        "set OPENAI_MODEL to a model it serves"
    ]


async def test_refused_tokens(fakes: Fakes, own_environment: dict[str, str]) -> None:
    own_environment["MASTODON_ACCESS_TOKEN"] = "revoked"
    verdicts = await ask(fakes, TELEGRAM_BOT_TOKEN="1:wrong", DISCORD_BOT_TOKEN="wrong")
    assert failed(verdicts) == [
        "✘ Telegram: Telegram refused TELEGRAM_BOT_TOKEN: create a new one with @BotFather "
        "(/token) and put it in .env",
        "✘ Discord: Discord refused DISCORD_BOT_TOKEN: reset it in the Developer Portal (your "
        "app → Bot → Reset Token) and put the new one in .env",
        f"✘ source 'masto' (mastodon): mastodon source 'masto' ({fakes.mastodon_url}): the "
        "access token in MASTODON_ACCESS_TOKEN was rejected (expired, revoked or mistyped)",
    ]
    assert exit_status(verdicts) == 78


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers; yields its /v1 URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_is_one_line() -> None:
    async with silent_server() as url:
        settings = settings_of({"OPENAI_BASE_URL": url, "OPENAI_MODEL": MODEL})
        config = parse_config(tomllib.loads(BRAND), "parley.toml")
        verdicts = await check_online(settings, config, seconds=0.5)
    assert lines(verdicts) == [
        f"✘ LLM: no answer from {url.split('/')[2]} within 0.5 s; check the machine's internet "
        "connection and that the server is up"
    ]
    assert exit_status(verdicts) == 1


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(values: dict[str, str], toml_text: str, capsys: pytest.CaptureFixture[str]) -> Any:
    Path(".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    Path("parley.toml").write_text(toml_text, encoding="utf-8")
    return main(["check", "--online"])


async def test_cli_all_pass_exits_0(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    # main() runs its own event loop: in a thread, while the fakes serve on this one.
    code = await asyncio.to_thread(run_cli, env(fakes), toml(fakes), capsys)
    out = capsys.readouterr()
    assert code == 0, out
    assert out.out.splitlines()[0].startswith("Configuration OK")
    assert sum(line.startswith("✔") for line in out.out.splitlines()) == 8


async def test_cli_unreachable_servers_are_one_line_each(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    values = env(
        fakes,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}",
        OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
    )
    code = await asyncio.to_thread(run_cli, values, toml(fakes), capsys)
    out = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out.out + out.err
    assert [line for line in out.out.splitlines() if line.startswith("✘")] == [
        f"✘ Telegram: cannot reach 127.0.0.1:{port}: connection refused; check that the server "
        "is running and the address",
        f"✘ LLM: cannot reach 127.0.0.1:{port}: connection refused; check that the server "
        "is running and the address",
    ]


async def test_bluesky_x_and_feed_sources(own_environment: dict[str, str]) -> None:
    own_environment.update(KEYS_ENV, BLUESKY_APP_PASSWORD=BLUESKY_PASSWORD)
    async with serve_fake_bluesky() as bluesky, serve_fake_x() as x:
        sources = {
            "sources": [
                {
                    "type": "bluesky",
                    "name": "bsky",
                    "base_url": bluesky.url,
                    "allow_private": True,
                    "identifier": BOT_HANDLE,
                },
                {"type": "x", "name": "xsrc", "base_url": x.url, "allow_private": True},
                {"type": "rss", "name": "feed", "url": "https://example.com/feed.xml"},
            ]
        }
        config = parse_config({**tomllib.loads(BRAND), **sources}, "parley.toml")
        settings = settings_of({})
        assert lines(await check_online(settings, config, seconds=30)) == [
            f"✔ source 'bsky' (bluesky): signed in as @{BOT_HANDLE}",
            f"✔ source 'xsrc' (x): signed in as @{X_BRAND}",
            "· source 'feed' (rss): no sign-in to check",
            "· LLM: none configured: drafts come from the templates",
        ]
        own_environment.update(BLUESKY_APP_PASSWORD="wrong", X_ACCESS_TOKEN="revoked")
        found = failed(await check_online(settings, config, seconds=30))
    assert [line.split(":")[0] for line in found] == [
        "✘ source 'bsky' (bluesky)",
        "✘ source 'xsrc' (x)",
    ]
    assert "check BLUESKY_APP_PASSWORD (an app password)" in found[0]
    assert "X refused the keys in X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN" in found[1]
