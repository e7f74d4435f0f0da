"""discord.py cogs (alerts, review, stats, watch): thin layers over the core services, loaded as
extensions by the Discord bot's setup_hook (see bot/frontends/discord/bot.py)."""

EXTENSIONS = ("cogs.alerts", "cogs.review", "cogs.stats", "cogs.watch")
"""The extensions, in load order (Alerts first: the other cogs edit the alerts it posts)."""
