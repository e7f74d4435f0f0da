"""discord.py cogs (alerts, review, stats, watch); they arrive with the Discord frontend."""
