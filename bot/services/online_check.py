"""``parley check --online``: which services to ask, from the settings and parley.toml.

Telegram (token, alert chat and each brand's chat), Discord (token, server, alert channels,
approver roles), the LLM server (one one-token request per model) and every source's
credentials. The questions themselves live in the online_* modules beside this one.
"""

from __future__ import annotations

from functools import partial

from bot.config import ParleyConfig
from bot.services.online_discord import DiscordTargets, check_discord
from bot.services.online_llm import OPENAI_URL, check_llm
from bot.services.online_runner import TIMEOUT, Check, Verdict, run_checks, skipped
from bot.services.online_sources import check_source, source_service
from bot.services.online_telegram import check_telegram
from bot.settings import Settings


async def check_online(
    settings: Settings, config: ParleyConfig, *, seconds: float = TIMEOUT
) -> list[Verdict]:
    """One line (or a few) per service, in a stable order; the services are asked at once."""
    verdicts = await run_checks(build_checks(settings, config), seconds=seconds)
    if not settings.llm_configured():
        verdicts.append(skipped("LLM", "none configured: drafts come from the templates"))
    return verdicts


def build_checks(settings: Settings, config: ParleyConfig) -> list[Check]:
    """Every service the configuration names."""
    checks: list[Check] = []
    if settings.telegram_configured() and settings.telegram_bot_token is not None:
        base = settings.telegram_api_base_url
        run = partial(
            check_telegram,
            base_url=base,
            token=settings.telegram_bot_token.get_secret_value().strip(),
            chats=telegram_chats(settings, config),
        )
        checks.append(Check("Telegram", base, run))
    if settings.discord_configured() and settings.discord_bot_token is not None:
        base = settings.discord_api_base_url
        targets = DiscordTargets(
            settings.discord_guild_id,
            discord_channels(settings, config),
            sorted(settings.discord_approver_roles()),
        )
        token = settings.discord_bot_token.get_secret_value().strip()
        checks.append(
            Check(
                "Discord", base, partial(check_discord, base_url=base, token=token, targets=targets)
            )
        )
    if settings.llm_configured():
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        models = [settings.openai_model, settings.openai_triage_model or settings.openai_model]
        run = partial(
            check_llm, base_url=settings.openai_base_url, api_key=key or None, models=models
        )
        checks.append(Check("LLM", settings.openai_base_url or OPENAI_URL, run))
    base_dir = settings.parley_config.resolve().parent
    for source in config.sources:
        url = getattr(source, "base_url", None) or getattr(source, "url", None) or source.type
        run = partial(check_source, config=source, base_dir=base_dir)
        checks.append(Check(source_service(source), str(url), run))
    return checks


def telegram_chats(settings: Settings, config: ParleyConfig) -> list[int | str]:
    """The default alert chat and every brand's own, each once."""
    values = [settings.telegram_alert_chat()] + [b.route.telegram_chat_id for b in config.brands]
    chats: list[int | str] = []
    for value in values:
        chat = _chat_id(value)
        if chat is not None and chat not in chats:
            chats.append(chat)
    return chats


def _chat_id(value: int | str | None) -> int | str | None:
    """A numeric id as a number, an @channelname as is."""
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.lstrip("-").isdigit() else value or None
    return value


def discord_channels(settings: Settings, config: ParleyConfig) -> list[int]:
    """The default alert channel and every brand's own, each once."""
    ids = [settings.discord_alert_channel_id] + [b.route.discord_channel_id for b in config.brands]
    return list(dict.fromkeys(i for i in ids if i is not None))
