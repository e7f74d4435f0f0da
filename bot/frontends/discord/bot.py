"""The discord.py bot holding the core, and who may talk to it from where.

``ParleyBot`` loads the cogs it is given (one extension per concern, ``cogs.EXTENSIONS``; the
Review cog registers the persistent buttons, DynamicItems, so alerts posted before a restart keep
working) and syncs the slash commands. ``DiscordFrontend`` (bot/frontends/discord/frontend.py)
runs it beside the core.

Only the ``guilds`` intent is used: interactions arrive without any intent, and members' role
ids come with each interaction, so no privileged intent is needed.

Parley works for one team: every interaction (slash command, autocomplete, button, select, modal)
from a server other than ``DISCORD_GUILD_ID``, or from a DM, is refused by :func:`team_only`,
which the command tree, the persistent components and the modals all call first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from bot.frontends.ratelimit_logs import quiet_handled_rate_limits
from bot.services.tenancy import Place
from bot.settings import Settings

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

    def __init__(
        self,
        core: Core,
        config: DiscordConfig,
        *,
        extensions: Sequence[str],
        guild_ready_timeout: float = 2.0,
    ):
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
        self.extensions_to_load = tuple(extensions)
        """The cogs' extensions (``cogs.EXTENSIONS``, chosen by whoever builds the bot)."""
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        """Load the cogs (the Review cog registers the persistent buttons), sync the slash
        commands."""
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
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
