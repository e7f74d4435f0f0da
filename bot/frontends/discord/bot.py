"""The Discord frontend's lifecycle: the discord.py bot holding the core, and its start and stop.

``ParleyBot`` loads the cogs (one extension per concern, listed in :data:`EXTENSIONS`),
registers the persistent buttons (DynamicItems, so alerts posted before a restart keep
working) and syncs the slash commands. ``DiscordFrontend`` runs it beside the core as
``parley run`` does for Telegram, with the core's alert delivery, whose Discord adapter
(:mod:`bot.frontends.discord.alerts`) posts alerts and edits them in place.

Only the ``guilds`` intent is used: interactions arrive without any intent, and members' role
ids come with each interaction, so no privileged intent is needed.

Parley works for one team: every interaction (slash command, autocomplete, button, select, modal)
from a server other than ``DISCORD_GUILD_ID``, or from a DM, is refused by :func:`team_only`,
which the command tree, the persistent components and the modals all call first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from bot.app import Core
from bot.domain.models import Actor
from bot.events import Event, MentionChanged, Notice
from bot.frontends.discord.link import NETWORK_ERRORS, DiscordLink, refused
from bot.frontends.ratelimit_logs import quiet_handled_rate_limits
from bot.services.tenancy import Place
from bot.services.throttle import DISCORD_LIMITS, ThrottleLimits
from bot.settings import Settings
from cogs import EXTENSIONS

log = logging.getLogger(__name__)

FRONTEND = "discord"
DEFAULT_API = "https://discord.com/api/v10"
DEFAULT_GATEWAY = "wss://gateway.discord.gg/"
_MAX_RATELIMIT_WAIT = 30.0
"""A 429 asking to wait longer raises discord.RateLimited instead of stalling the request, so
the throttle can pause that channel (discord.py's minimum for this option)."""


@dataclass(frozen=True)
class DiscordConfig:
    """What the frontend needs from the settings."""

    token: SecretStr
    guild_id: int | None = None
    alert_channel_id: int | None = None
    alert_threads: bool = False
    api_base_url: str = DEFAULT_API
    gateway_url: str = DEFAULT_GATEWAY

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordConfig:
        """Read the DISCORD_* settings (the token must be set)."""
        if settings.discord_bot_token is None:
            raise ValueError("DISCORD_BOT_TOKEN is not set")
        return cls(
            token=settings.discord_bot_token,
            guild_id=settings.discord_guild_id,
            alert_channel_id=settings.discord_alert_channel_id,
            alert_threads=settings.discord_alert_threads,
            api_base_url=settings.discord_api_base_url,
            gateway_url=settings.discord_gateway_url,
        )


def point_at(api_base_url: str, gateway_url: str) -> None:
    """Send discord.py's REST calls and its first gateway connection to these URLs.

    Both are class attributes in discord.py, hence process-wide; the defaults are Discord's.
    """
    Route.BASE = api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def refusal(interaction: discord.Interaction) -> str | None:
    """Why Parley does not answer this interaction (None: it comes from the team's server)."""
    if interaction.guild_id is None:
        return "Parley answers only in its team's Discord server; use its commands there."
    client = interaction.client
    team = client.config.guild_id if isinstance(client, ParleyBot) else None
    if team is None or interaction.guild_id != team:
        return "This bot works for one team's server only; it does not answer here."
    return None


async def team_only(interaction: discord.Interaction) -> bool:
    """Whether to handle an interaction; one from elsewhere is answered with a refusal (only
    to its author) and dropped."""
    why = refusal(interaction)
    if why is None:
        return True
    log.info("refused a Discord interaction from guild %s", interaction.guild_id or "DM")
    try:
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        elif not interaction.response.is_done():
            await interaction.response.send_message(
                why, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except discord.HTTPException as exc:
        log.warning("could not answer a refused Discord interaction: %s", exc)
    return False


def place(interaction: discord.Interaction) -> Place:
    """Where an interaction came from, for the tenancy rules: its channel, and a thread's
    parent channel (a thread belongs to the channel it was opened in)."""
    channel = interaction.channel
    ids: list[int | str] = [interaction.channel_id] if interaction.channel_id else []
    if isinstance(channel, discord.Thread):
        ids.append(channel.parent_id)
    return Place(FRONTEND, tuple(ids), team_space=refusal(interaction) is None)


class TeamTree(app_commands.CommandTree[discord.Client]):
    """The command tree: slash commands and their autocomplete from the team's server only."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Refuse what comes from another server or a DM (see :func:`team_only`)."""
        return await team_only(interaction)


class ParleyBot(commands.Bot):
    """The discord.py bot: the core's services for the cogs, the cogs and the slash commands."""

    def __init__(self, core: Core, config: DiscordConfig, *, guild_ready_timeout: float = 2.0):
        quiet_handled_rate_limits()
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            # No prefix commands (no message content intent); mentions cannot trigger any.
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            max_ratelimit_timeout=_MAX_RATELIMIT_WAIT,
            tree_cls=TeamTree,
        )
        self.core = core
        self.config = config
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        """Load the cogs, register the persistent buttons, sync the slash commands."""
        # Imported here: views and cogs import this module for ParleyBot.
        from bot.frontends.discord.views import DYNAMIC_ITEMS

        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        self.synced = await self.sync_commands()
        log.info("Discord: %d slash commands synced", len(self.synced))

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Register the slash commands: in DISCORD_GUILD_ID at once, else globally."""
        if self.config.guild_id is None:
            return await self.tree.sync()
        guild = discord.Object(id=self.config.guild_id)
        self.tree.copy_global_to(guild=guild)
        return await self.tree.sync(guild=guild)

    def actor(self, user: discord.User | discord.Member) -> Actor:
        """The Actor for a Discord user; a member's role ids are its roles (approver roles)."""
        roles = frozenset(str(r.id) for r in getattr(user, "roles", ()))
        return Actor(
            platform=FRONTEND, user_id=str(user.id), display_name=user.display_name, roles=roles
        )

    def alert_channel_id(self, brand_name: str) -> int | None:
        """Where a brand's alerts go: its route, else DISCORD_ALERT_CHANNEL_ID."""
        brand = self.core.config.brand(brand_name)
        if brand is not None and brand.route.discord_channel_id is not None:
            return brand.route.discord_channel_id
        return self.config.alert_channel_id


class DiscordFrontend:
    """Alerts, buttons, modals and slash commands in Discord, calling the same core services."""

    name = FRONTEND

    def __init__(
        self,
        core: Core,
        config: DiscordConfig,
        *,
        guild_ready_timeout: float = 2.0,
        limits: ThrottleLimits = DISCORD_LIMITS,
    ):
        # Imported here: the adapter renders with views, which import this module for ParleyBot.
        from bot.frontends.discord.alerts import DiscordAlerts

        self.core = core
        self.config = config
        self.bot = ParleyBot(core, config, guild_ready_timeout=guild_ready_timeout)
        self.delivery = core.deliveries.add(FRONTEND, DiscordAlerts(self.bot), limits)
        self._ready = asyncio.Event()
        self.link = DiscordLink(self)
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
