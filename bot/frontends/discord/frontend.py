"""The Discord frontend: runs the discord.py bot beside the core, as ``parley run`` does for
Telegram, with the core's alert delivery, whose Discord adapter
(:mod:`bot.frontends.discord.alerts`) posts alerts and edits them in place.

The bot (:mod:`bot.frontends.discord.bot`) loads the cogs it is given (``cogs.EXTENSIONS``, passed
by whoever builds the frontend, so this package does not import ``cogs``), and the Review cog
registers the persistent buttons.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from bot.app import Core
from bot.events import Event, MentionChanged, Notice
from bot.frontends.discord.alerts import DiscordAlerts
from bot.frontends.discord.bot import FRONTEND, DiscordConfig, ParleyBot, point_at
from bot.frontends.discord.link import NETWORK_ERRORS, DiscordLink, refused
from bot.services.throttle import DISCORD_LIMITS, ThrottleLimits

log = logging.getLogger(__name__)


class DiscordFrontend:
    """Alerts, buttons, modals and slash commands in Discord, calling the same core services."""

    name = FRONTEND

    def __init__(
        self,
        core: Core,
        config: DiscordConfig,
        *,
        extensions: Sequence[str],
        guild_ready_timeout: float = 2.0,
        limits: ThrottleLimits = DISCORD_LIMITS,
    ):
        self.core = core
        self.config = config
        self.bot = ParleyBot(
            core, config, extensions=extensions, guild_ready_timeout=guild_ready_timeout
        )
        self.delivery = core.deliveries.add(FRONTEND, DiscordAlerts(self.bot), limits)
        self._ready = asyncio.Event()
        self.link = DiscordLink(self.bot, self.delivery)
        self.bot.add_listener(self._on_disconnect, "on_disconnect")
        self.bot.add_listener(self._on_reconnect, "on_resumed")
        self.bot.add_listener(self._on_reconnect, "on_ready")
        core.bus.subscribe(self.name, self.on_event, alerts=False)  # the delivery reads them

    async def run(self, stop: asyncio.Event) -> None:
        """Log in (retried with back-off until Discord answers; a refused token raises
        ConfigError), connect and serve until ``stop``; then send what the throttle may and
        close."""
        point_at(self.config.api_base_url, self.config.gateway_url)
        async with self.bot:
            if not await self.link.login(stop, self.config.token.get_secret_value()):
                return
            client = asyncio.create_task(self.bot.connect(reconnect=True))
            try:
                if await _first(self.bot.wait_until_ready(), stop.wait(), client) != 0:
                    return  # stopped, or the connection failed (raised below)
                self._ready.set()
                log.info("Discord bot %s is running", self.bot.user)
                await self.link.ready()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.delivery.run(stop))
                    if await _first(stop.wait(), client) == 1:
                        client.result()  # the connection's failure stops the frontend
                        raise RuntimeError("the Discord client stopped")
            finally:
                self._ready.clear()
                await self.bot.close()
                if not client.done():
                    await client
                _raise_refusal(client)

    async def _on_disconnect(self) -> None:
        """The gateway connection dropped (discord.py reconnects by itself)."""
        if self._ready.is_set() and self.link.outage.lost():
            log.warning("lost the connection to Discord; discord.py reconnects by itself")

    async def _on_reconnect(self) -> None:
        """Connected again after a drop: say so once, make the edits owed meanwhile."""
        if self._ready.is_set():
            await self.link.ready()

    async def on_event(self, event: Event) -> None:
        """Hand a change or a notice to the alert delivery (alerts need nothing here: the
        delivery service reads them from the store). Nothing waits for Discord: a change it
        cannot take now (not connected, stopping) is stored and shown once connected, a notice
        is held until then."""
        if isinstance(event, Notice) and not self._ready.is_set():
            self.link.notices.hold(event.text)
        elif isinstance(event, Notice):
            await self.delivery.on_event(event)
        elif isinstance(event, MentionChanged):
            await self._on_change(event)

    async def _on_change(self, event: MentionChanged) -> None:
        if not self._ready.is_set():
            await self.link.owe(event.mention.id)
            return
        try:
            await self.delivery.on_event(event)
        except NETWORK_ERRORS:
            await self.link.owe(event.mention.id)
        except asyncio.CancelledError:  # stopping with the edit in flight
            await self.link.owe(event.mention.id)
            raise


def _raise_refusal(client: asyncio.Task[None]) -> None:
    """The client's failure, as ConfigError when Discord refused the bot (an intent)."""
    if client.cancelled() or client.exception() is None:
        return
    exc = client.exception()
    assert exc is not None
    raise refused(exc) or exc


async def _first(*aws: Awaitable[object]) -> int:
    """The index of the first of ``aws`` to finish. Coroutines are wrapped and cancelled
    afterwards; tasks passed in are the caller's and keep running."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for given, task in zip(aws, tasks, strict=True):
        if task is not given:
            task.cancel()
    return next(i for i, task in enumerate(tasks) if task in done)
