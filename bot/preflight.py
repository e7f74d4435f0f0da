"""Preflight: every configuration problem `parley check` reports and `parley run` refuses.

Both commands call :func:`validate`, so they cannot disagree. It reads the settings (environment
and ``.env``), ``parley.toml``, the prompts and each source's secrets, and returns the settings and
the config only when nothing is wrong; otherwise a :class:`ConfigError` carries one plain line
per problem, saying what to do. Secret values are never echoed.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

from dotenv import dotenv_values
from pydantic import BaseModel

from bot.config import ParleyConfig, load_config
from bot.connectors.catalog import CONNECTORS, build_source
from bot.connectors.rss.connector import RssSourceConfig
from bot.drafting.offline import OfflineDrafter
from bot.errors import ConfigError
from bot.settings import Settings, load_settings

OWN_PREFIXES = ("PARLEY_", "TELEGRAM_", "DISCORD_", "OPENAI_")
"""Environment names Parley owns: an unknown one is a typo."""

LIBRARY_NAMES = frozenset({"OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_LOG"})
"""Read by the openai library itself, so legitimate in the environment."""

_PLACEHOLDER = re.compile(
    r"""^(changeme|change[-_ ]me|todo|tbd|fixme|placeholder|token|secret|none|null|x{3,}|<.*>)$
    |paste|your[-_ ]|replace[-_ ]?(me|with)|(\.\.\.|…)$""",
    re.IGNORECASE | re.VERBOSE,
)


def validate(env_file: Path = Path(".env")) -> tuple[Settings, ParleyConfig]:
    """Settings and config when Parley can start with them; else a ConfigError with every problem.

    ``.env`` must already be loaded into the environment (the CLI does it first).
    """
    dotenv = dict(dotenv_values(env_file)) if env_file.is_file() else {}
    problems = placeholder_problems(dotenv, os.environ)
    try:
        settings = load_settings()
    except ConfigError as exc:
        unknown = unknown_name_problems(dotenv, os.environ, None)
        raise ConfigError(unknown + problems + exc.problems) from None
    try:
        config: ParleyConfig | None = load_config(settings.parley_config)
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    problems[:0] = unknown_name_problems(dotenv, os.environ, config)
    problems.extend(frontend_problems(settings, config))
    problems.extend(file_problems(settings, config))
    if config is not None:
        base = settings.parley_config.resolve().parent
        problems.extend(asyncio.run(_source_problems(config, base)))
    if problems or config is None:
        raise ConfigError(problems)
    return settings, config


def connector_env_names() -> set[str]:
    """The environment names connectors read by default (their ``*_env`` defaults and fixed
    names), whatever ``parley.toml`` says."""
    names: set[str] = set()
    for spec in CONNECTORS:
        names.update(spec.env_names, _env_defaults(spec.config))
    return names


def connector_prefixes() -> tuple[str, ...]:
    """Prefixes of the connectors' secrets (``MASTODON_``, ``X_``…): an unknown name with one
    in ``.env`` is a typo too."""
    names = connector_env_names()
    return tuple(sorted({n.split("_")[0] + "_" for n in names if not n.startswith(OWN_PREFIXES)}))


def known_names(config: ParleyConfig | None) -> set[str]:
    """Every environment name Parley reads: settings, connectors' secrets, the config's own."""
    names = {name.upper() for name in Settings.model_fields} | connector_env_names()
    for source in config.sources if config is not None else ():
        names.update(_env_values(source.model_dump()))
    return names | LIBRARY_NAMES


def _env_defaults(model: type[BaseModel]) -> Iterator[str]:
    """Default values of a config model's ``*_env`` fields, nested models included."""
    for name, field in model.model_fields.items():
        if name.endswith("_env") and isinstance(field.default, str):
            yield field.default
        for kind in (field.annotation, *get_args(field.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _env_defaults(kind)


def _env_values(data: Mapping[str, Any]) -> Iterator[str]:
    for key, value in data.items():
        if key.endswith("_env") and isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            yield from _env_values(value)


def unknown_name_problems(
    dotenv: Mapping[str, str | None], environ: Mapping[str, str], config: ParleyConfig | None
) -> list[str]:
    """Names in ``.env`` or the environment that look like Parley's but are not, with a hint."""
    known = known_names(config)
    prefixes = OWN_PREFIXES + connector_prefixes()
    problems = []
    for name in dotenv:
        if name not in known and (name.startswith(prefixes) or _closest(name, known)):
            problems.append(_unknown(".env", name, known))
    for name in sorted(environ):
        if name.startswith(OWN_PREFIXES) and name not in known and name not in dotenv:
            problems.append(_unknown("environment", name, known))
    return problems


def _closest(name: str, known: set[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    return matches[0] if matches else None


def _unknown(where: str, name: str, known: set[str]) -> str:
    guess = _closest(name, known)
    hint = f"did you mean {guess}?" if guess else "check its spelling against .env.example"
    return f"{where}: {name} is not a setting Parley knows: {hint}"


def placeholder_problems(dotenv: Mapping[str, str | None], environ: Mapping[str, str]) -> list[str]:
    """Settings still holding an example's placeholder (``paste-your-token-here``, ``xxx``…)."""
    problems = []
    for name in sorted(known_names(None)):
        value = (environ.get(name) or "").strip()
        if value and _PLACEHOLDER.search(value):
            where = ".env" if (dotenv.get(name) or "").strip() == value else "environment"
            problems.append(
                f"{where}: {name} still holds a placeholder: put the real value or remove the line"
            )
    return problems


def frontend_problems(settings: Settings, config: ParleyConfig | None) -> list[str]:
    """Chat frontends that would start but could not alert or be approved from."""
    problems = []
    brands = config.brands if config is not None else []
    if (
        settings.telegram_configured()
        and settings.telegram_alert_chat() is None
        and (not brands or any(b.route.telegram_chat_id is None for b in brands))
    ):
        problems.append(
            "environment/.env: TELEGRAM_BOT_TOKEN is set but TELEGRAM_ALERT_CHAT_ID is not: add "
            "the bot to your team's group, send /start there and put the id it shows in .env"
        )
    if settings.discord_configured() and settings.discord_guild_id is None:
        problems.append(
            "environment/.env: DISCORD_BOT_TOKEN is set but DISCORD_GUILD_ID is not, and Parley "
            "answers only in its team's server: turn on Developer Mode in Discord, right-click "
            "your server's icon, Copy Server ID, and put it in .env"
        )
    if (
        settings.discord_configured()
        and not settings.discord_approver_roles()
        and (not brands or any(not b.approvers.discord_role_ids for b in brands))
    ):
        problems.append(
            "environment/.env: DISCORD_BOT_TOKEN is set but DISCORD_APPROVER_ROLE_IDS is not, so "
            "nobody could approve a reply: put the ids of the roles that may approve in .env"
        )
    chats = settings.telegram_configured() or settings.discord_configured()
    if settings.parley_console == "off" and not chats:
        problems.append(
            "no chat frontend is enabled: set TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN "
            "or PARLEY_CONSOLE=on"
        )
    return problems


def file_problems(settings: Settings, config: ParleyConfig | None) -> list[str]:
    """Prompt templates, brand-voice files and local feeds that are missing or broken."""
    problems = []
    prompts = settings.prompts_dir()
    try:
        OfflineDrafter(prompts)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if config is None:
        return problems
    origin = settings.parley_config
    for i, brand in enumerate(config.brands):
        if brand.voice_file and not (prompts / brand.voice_file).is_file():
            problems.append(
                f"{origin}: brands[{i}].voice_file: {prompts / brand.voice_file} does not exist"
            )
    base = origin.resolve().parent
    for i, source in enumerate(config.sources):
        path = source.path if isinstance(source, RssSourceConfig) else None
        if path is not None and not (base / path).is_file():
            problems.append(f"{origin}: sources[{i}].path: {path} does not exist")
    return problems


async def _source_problems(config: ParleyConfig, base_dir: Path) -> list[str]:
    """Build each source as ``run`` would (nothing is fetched): a missing secret is a problem."""
    problems: list[str] = []
    for source in config.sources:
        try:
            built = build_source(source, base_dir=base_dir)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            await built.source.aclose()
    return problems
