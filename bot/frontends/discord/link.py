"""The Discord frontend's connection: log in with back-off, say when Discord is back.

``login`` (the REST ``/users/@me`` call) is tried until Discord answers, with
:class:`~bot.services.reconnect.Backoff` and one log line per attempt, while the rest of Parley
runs on; a refused token (``LoginFailure``) or a missing privileged intent is a ConfigError (exit
status 78). Once logged in, discord.py's own reconnect loop keeps the gateway connected; its
per-attempt tracebacks are cut to one line. Alert edits the chat could not take (not connected,
stopping) are stored in ``alert_refresh`` and made once the bot is ready, after a restart too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.errors import ConfigError
from bot.services.reconnect import (
    Backoff,
    HeldNotices,
    Outage,
    back_notice,
    one_line_errors,
    pause,
)
from bot.storage.chat_state import AlertRefreshRepo

if TYPE_CHECKING:
    from bot.frontends.discord.bot import DiscordFrontend

log = logging.getLogger(__name__)

REFUSED = (
    "Discord refused DISCORD_BOT_TOKEN: reset it in the Developer Portal "
    "(your application → Bot → Reset Token) and put the new one in .env"
)
INTENTS = (
    "Discord refused a privileged intent: turn it on in the Developer Portal "
    "(your application → Bot → Privileged Gateway Intents) or remove it"
)
NETWORK_ERRORS = (OSError, aiohttp.ClientError, asyncio.TimeoutError)


def refused(exc: BaseException) -> ConfigError | None:
    """The ConfigError for a refusal from Discord (None for any other failure)."""
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return ConfigError([INTENTS])
    if isinstance(exc, discord.LoginFailure):
        return ConfigError([REFUSED])
    return None


class DiscordLink:
    """Logging in, the outage at start, and edits owed to the channel."""

    def __init__(self, frontend: DiscordFrontend) -> None:
        self.frontend = frontend
        self.outage = Outage()
        self.owed = AlertRefreshRepo(frontend.core.store.db, frontend.name)
        self.notices = HeldNotices("Discord")
        one_line_errors("discord.client")  # a traceback per reconnect attempt

    async def login(self, stop: asyncio.Event, token: str) -> bool:
        """Log in, retried until Discord answers; False if ``stop`` came first."""
        backoff = Backoff()
        bot = self.frontend.bot
        while True:
            try:
                await bot.login(token)
                return True
            except discord.LoginFailure:
                raise ConfigError([REFUSED]) from None
            except (*NETWORK_ERRORS, discord.DiscordServerError) as exc:
                self.outage.lost()
                await bot.http.close()  # the next attempt opens a new session…
                bot.http.connector = discord.utils.MISSING  # …with a new connector
                delay = backoff.next()
                why = str(exc) or type(exc).__name__
                log.warning("cannot reach Discord (%s); trying again in %.0f s", why, delay)
                if await pause(stop, delay):
                    return False

    async def ready(self) -> None:
        """The bot is connected: say so if Discord was unreachable, show the held notices,
        make the owed edits."""
        notice = self.frontend.delivery.adapter.notice
        lasted = self.outage.regained()
        try:
            if lasted is not None:
                queued = await self.frontend.delivery.throttle.backlog.total()
                text = back_notice("Discord", lasted, queued)
                log.info("%s", text)
                await notice(text)
            await self.notices.show(notice)
        except NETWORK_ERRORS as exc:
            log.warning("could not show the held notices in Discord (%s)", exc)
            return
        for mention_id in await self.owed.owed():
            try:
                await self.frontend.delivery.refresh(mention_id)
            except discord.HTTPException as exc:
                log.warning("could not update the alert of mention #%d: %s", mention_id, exc)
            await self.owed.done(mention_id)

    async def owe(self, mention_id: int) -> None:
        """This alert's edit could not be made now: stored, made once connected."""
        await self.owed.mark(mention_id)
