"""Review cog: wires the alert components (buttons, selects) into the bot while it is loaded.

What a click does lives with the components (bot/frontends/discord/views.py), which run the core's
review commands (bot/services/review_commands.py): every click is checked again (the presser must
approve the mention's brand, in a channel that sees it) and the core refuses what the mention's
state does not allow, so a double click answers the second presser "already approved" instead of
queueing a second reply. The components are ``DynamicItem``s, so alerts posted before a restart
keep working once this cog registered them.
"""

from __future__ import annotations

from discord.ext import commands

from bot.frontends.discord.interactions import parley_bot
from bot.frontends.discord.views import DYNAMIC_ITEMS


class Review(commands.Cog):
    """Registers the persistent alert components on load, removes them on unload."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = parley_bot(bot)

    async def cog_load(self) -> None:
        """Let clicks on Parley's components (old alerts included) reach their callbacks."""
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)

    async def cog_unload(self) -> None:
        """Clicks are no longer handled (the stale-button answer included)."""
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)


async def setup(bot: commands.Bot) -> None:
    """Load the cog (extension entry point)."""
    await bot.add_cog(Review(bot))
