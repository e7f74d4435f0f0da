"""Watch cog: ``/watch list|add|remove`` and ``/pause``, ``/resume``, through WatchService and
AlertControl (which allow changes to approvers only).

The rule list only concerns the caller (ephemeral); a change is announced in the channel, so
the team sees who changed what.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import PermissionDenied
from bot.frontends.discord.interactions import (
    NO_PINGS,
    brand_choices,
    guarded,
    parley_bot,
    reader,
    seen,
    tell,
)
from bot.frontends.discord.render import fit, rule_line, watch_text
from bot.services.watch import MAX_NAME_CHARS, MAX_QUERY_CHARS


async def _announce(interaction: discord.Interaction, text: str) -> None:
    """Answer in the channel, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(text, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, allowed_mentions=NO_PINGS)


class Watch(commands.Cog):
    """Watch rules and the alert pause switch."""

    watch = app_commands.Group(name="watch", description="Watch rules: list, add or remove")

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = parley_bot(bot)
        self.core = self.bot.core

    @watch.command(name="list", description="Every watch rule, in matching order")
    @app_commands.describe(brand="Only this brand's rules")
    @app_commands.autocomplete(brand=brand_choices)
    async def list_rules(self, interaction: discord.Interaction, brand: str | None = None) -> None:
        """The rules from parley.toml, then those added from chat (ephemeral)."""

        async def work() -> None:
            _, scope = seen(interaction)
            tenancy = self.core.tenancy
            rules = await self.core.watch.rules(tenancy.brand(scope, brand))
            await tell(interaction, watch_text([r for r in rules if tenancy.sees(scope, r.brand)]))

        await guarded(interaction, "/watch list", work)

    @watch.command(name="add", description="Add a watch rule (applies from the next poll)")
    @app_commands.describe(
        brand="The brand the rule files mentions under",
        name="One word naming the rule",
        query="What to look for, e.g. acme (price OR pricing) -job",
        urgent="Flag matching mentions as urgent",
    )
    @app_commands.autocomplete(brand=brand_choices)
    async def add(
        self,
        interaction: discord.Interaction,
        brand: str,
        name: app_commands.Range[str, 1, MAX_NAME_CHARS],
        query: app_commands.Range[str, 1, MAX_QUERY_CHARS],
        urgent: bool = False,
    ) -> None:
        """Add a rule (approvers only; WatchService checks the query and the name)."""

        async def work() -> None:
            actor, scope = seen(interaction)
            self.core.tenancy.brand(scope, brand)
            rule = await self.core.watch.add(brand, name, query, actor, urgent=urgent)
            who = fit(actor.display_name or actor.user_id, 100)
            await _announce(interaction, f"Rule added by {who}: {rule_line(rule)}")

        await guarded(interaction, "/watch add", work)

    @watch.command(name="remove", description="Remove a watch rule added from chat")
    @app_commands.describe(brand="The rule's brand", name="The rule's name")
    @app_commands.autocomplete(brand=brand_choices)
    async def remove(self, interaction: discord.Interaction, brand: str, name: str) -> None:
        """Remove a chat rule (rules from parley.toml are changed in that file)."""

        async def work() -> None:
            actor, scope = seen(interaction)
            self.core.tenancy.brand(scope, brand)
            rule = await self.core.watch.remove(brand, name, actor)
            who = fit(actor.display_name or actor.user_id, 100)
            await _announce(
                interaction,
                f"Rule **{fit(rule.brand, 64)}/{fit(rule.name, 64)}** removed by {who}.",
            )

        await guarded(interaction, "/watch remove", work)

    @app_commands.command(name="pause", description="Hold new alerts; mentions are still collected")
    async def pause(self, interaction: discord.Interaction) -> None:
        """Pause alerting (approvers only)."""

        async def work() -> None:
            actor = reader(interaction)
            await self.core.alerts.pause(actor)
            await _announce(
                interaction, "⏸ Alerts paused. Mentions are still collected; /resume shows them."
            )

        await guarded(interaction, "/pause", work)

    @app_commands.command(name="resume", description="Show the held mentions and alert again")
    async def resume(self, interaction: discord.Interaction) -> None:
        """Resume alerting; the held mentions are alerted, urgent first (approvers only)."""

        async def work() -> None:
            actor = reader(interaction)
            if not self.core.review.policy.is_approver(actor):  # refused privately, not deferred
                raise PermissionDenied("only approvers can resume alerts; ask a team lead")
            await interaction.response.defer(thinking=True)  # held mentions may be drafted
            count = await self.core.alerts.resume(actor)
            plural = "s" if count != 1 else ""
            await _announce(
                interaction, f"▶️ Alerts resumed; {count} held mention{plural} on the way."
            )

        await guarded(interaction, "/resume", work)


async def setup(bot: commands.Bot) -> None:
    """Load the cog (extension entry point)."""
    await bot.add_cog(Watch(bot))
