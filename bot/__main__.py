"""The `parley` command: run, demo, check (--online), status."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dotenv import load_dotenv

from bot import __version__
from bot.app import Frontend, build_core, run_core
from bot.config import ParleyConfig
from bot.domain.states import UNPOSTED
from bot.errors import ConfigError, ParleyError, StorageError
from bot.frontends.console.frontend import ConsoleFrontend
from bot.localtime import set_zone
from bot.preflight import validate
from bot.services.health import health_lines
from bot.services.online_check import check_online
from bot.services.online_runner import exit_status
from bot.settings import Settings, load_settings
from bot.storage.backup import backup_database
from bot.storage.db import Database
from bot.storage.store import Store

log = logging.getLogger("bot")

EX_CONFIG = 78
"""Exit status for a configuration error (sysexits.h EX_CONFIG): a supervisor should not loop."""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "aiosqlite", "discord.http", "telegram.ext"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley", description="Parley: brand mentions into your team chat, replies out."
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="watch sources and run the chat frontends (the main job)")
    demo = sub.add_parser("demo", help="try Parley on bundled sample mentions in this terminal")
    demo.add_argument("--db", type=Path, help="keep the demo database in this file")
    check = sub.add_parser("check", help="validate settings, parley.toml and prompts, then exit")
    check.add_argument(
        "--online", action="store_true", help="also ask each service whether it accepts Parley"
    )
    sub.add_parser("status", help="show source health, mention counts and the outbox")
    backup = sub.add_parser("backup", help="copy the database to FILE, safely while Parley runs")
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    return parser


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _run(settings: Settings, config: ParleyConfig) -> None:
    async with build_core(settings, config) as core:
        frontends: list[Frontend] = []
        if settings.telegram_configured():
            from bot.frontends.telegram import TelegramConfig, TelegramFrontend

            frontends.append(TelegramFrontend(core, TelegramConfig.from_settings(settings)))
        if settings.discord_configured():
            from bot.frontends.discord import DiscordConfig, DiscordFrontend
            from cogs import EXTENSIONS

            discord = DiscordConfig.from_settings(settings)
            frontends.append(DiscordFrontend(core, discord, extensions=EXTENSIONS))
        # auto: the console only while no other chat is configured.
        if settings.parley_console == "on" or (settings.parley_console == "auto" and not frontends):
            frontends.append(ConsoleFrontend(core))
        if not frontends:
            raise ConfigError(
                [
                    "no chat frontend is enabled: set TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN "
                    "or PARLEY_CONSOLE=on"
                ]
            )
        log.info(
            "Parley %s: %d brands, %d sources, drafting with %s",
            __version__,
            len(config.brands),
            len(config.sources),
            core.drafter.name,
        )
        stop = asyncio.Event()
        _install_stop(stop)
        await run_core(core, frontends, stop)


async def status(settings: Settings) -> list[str]:
    """Source health, mention counts and the outbox, as lines."""
    path = settings.parley_db_path
    if not path.exists():
        raise StorageError(f"no database at {path} yet; start Parley with 'parley run' first")
    set_zone(settings.display_zone())
    async with Database.open(path) as db:
        store = Store(db)
        lines = ["Sources:", *(f"  {line}" for line in await health_lines(store))]
        counts = await store.stats.count_by("state", datetime.min.replace(tzinfo=UTC))
        lines.append(
            "Mentions: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        )
        waiting = await store.replies.in_states(UNPOSTED)
        lines.append(f"Outbox: {len(waiting)} replies not yet posted")
        return lines


def _check_online(settings: Settings, config: ParleyConfig) -> int:
    """Ask each service; one line each; 0 only when every answer was yes."""
    verdicts = asyncio.run(check_online(settings, config))
    print("\n".join(verdict.line for verdict in verdicts))
    return exit_status(verdicts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parley` console script."""
    args = _parser().parse_args(argv)
    # Connector secrets (tokens, app passwords) are read from the environment by name, so
    # .env fills the environment too; real environment variables win.
    load_dotenv(".env", override=False)
    try:
        if args.command in ("run", "check"):
            # One validation for both: run refuses exactly what check reports.
            settings, config = validate()
        else:
            settings = load_settings()
        _setup_logging(settings.parley_log_level)
        if args.command == "run":
            asyncio.run(_run(settings, config))
        elif args.command == "demo":
            from bot.demo.runner import run_demo

            if "parley_log_level" not in settings.model_fields_set:
                logging.getLogger().setLevel(logging.WARNING)
            asyncio.run(run_demo(settings, args.db))
        elif args.command == "check":
            print(f"Configuration OK ({settings.parley_config}).")
            if args.online:
                return _check_online(settings, config)
        elif args.command == "status":
            print("\n".join(asyncio.run(status(settings))))
        elif args.command == "backup":
            print(backup_database(settings.parley_db_path, args.file, force=args.force))
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EX_CONFIG
    except ParleyError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
