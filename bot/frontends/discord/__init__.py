"""The Discord frontend: the bot object, alert embeds, persistent buttons and modals (cogs live in
cogs/)."""

from bot.frontends.discord.bot import DiscordConfig, ParleyBot
from bot.frontends.discord.frontend import DiscordFrontend

__all__ = ["DiscordConfig", "DiscordFrontend", "ParleyBot"]
