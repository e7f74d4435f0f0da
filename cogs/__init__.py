"""discord.py cogs (review, stats, watch): thin layers over the core services, loaded as
extensions by the Discord bot's setup_hook (see bot/frontends/discord/bot.py)."""

EXTENSIONS = ("cogs.review", "cogs.stats", "cogs.watch")
"""The extensions, in load order (alerts are posted by the core's alert delivery, not a cog);
whoever builds the Discord frontend passes them (``parley run``: bot/__main__.py)."""
