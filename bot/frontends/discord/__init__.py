"""The Discord frontend: the bot object, alert embeds, persistent buttons and modals (cogs live in
cogs/)."""

from bot.frontends.discord.bot import DiscordConfig, DiscordFrontend, ParleyBot

__all__ = ["DiscordConfig", "DiscordFrontend", "ParleyBot"]
