"""Stats cog: ``/stats`` with its chart, ``/pending``, ``/queue``, ``/sources`` and ``/mention``.

Lookups that only concern the caller (``/pending``, ``/queue``, ``/sources``) are ephemeral;
``/stats`` and ``/mention`` answer in the channel, and the alert ``/mention`` posts becomes the
one kept up to date (the original may be in a digest, or old).
"""

from __future__ import annotations

import io
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain.states import ReplyState
from bot.frontends.discord.render import pending_text, plain, queue_text, sources_text
from bot.frontends.discord.views import (
    FRONTEND,
    NO_PINGS,
    brand_choices,
    current_alert,
    decider,
    guarded,
    parley_bot,
    seen,
    tell,
)
from bot.services.charts import chart_png
from bot.services.health import health_lines
from bot.services.stats import PERIODS, compute_stats, parse_period, stats_lines
from bot.services.tenancy import SOURCES

log = logging.getLogger(__name__)

_QUEUE_STATES = (
    ReplyState.QUEUED,
    ReplyState.SENDING,
    ReplyState.FAILED,
    ReplyState.AWAITING_MANUAL,
    ReplyState.DEAD,
)
_PERIOD_CHOICES = [app_commands.Choice(name=p, value=p) for p in PERIODS]


class Stats(commands.Cog):
    """Figures and lookups for the team."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = parley_bot(bot)
        self.core = self.bot.core

    @app_commands.command(
        name="stats", description="Mentions, replies and response times, with a chart"
    )
    @app_commands.describe(period="How far back to count (default 24h)", brand="Only this brand")
    @app_commands.choices(period=_PERIOD_CHOICES)
    @app_commands.autocomplete(brand=brand_choices)
    async def stats(
        self,
        interaction: discord.Interaction,
        period: app_commands.Choice[str] | None = None,
        brand: str | None = None,
    ) -> None:
        """The figures as text and the chart as a PNG attachment (deferred: it is drawn)."""

        async def work() -> None:
            _, scope = seen(interaction)
            chosen = parse_period(period.value if period else None)
            only = self.core.tenancy.only_brand(scope, brand)
            await interaction.response.defer(thinking=True)
            stats = await compute_stats(self.core.store, chosen, only)
            text = plain("```\n" + "\n".join(stats_lines(stats)) + "\n```")
            label = self.core.brand_label(only) if only else None
            try:
                png = await chart_png(self.core.store, stats, label=label)
            except Exception:
                log.exception("stats chart failed; sending the figures as text only")
                await interaction.followup.send(text, allowed_mentions=NO_PINGS)
                return
            chart = discord.File(io.BytesIO(png), filename="parley-stats.png")
            await interaction.followup.send(text, file=chart, allowed_mentions=NO_PINGS)

        await guarded(interaction, "/stats", work)

    @app_commands.command(
        name="pending", description="Mentions waiting for a decision, urgent first"
    )
    @app_commands.describe(brand="Only this brand")
    @app_commands.autocomplete(brand=brand_choices)
    async def pending(self, interaction: discord.Interaction, brand: str | None = None) -> None:
        """Mentions alerted or drafted and not yet decided (ephemeral)."""

        async def work() -> None:
            _, scope = seen(interaction)
            only = self.core.tenancy.brand(scope, brand)
            alerts = self.core.alerts
            mentions = await alerts.pending(brand=only, limit=30, brands=scope)
            total = await alerts.pending_count(brand=only, brands=scope) if mentions else 0
            await tell(interaction, pending_text(mentions, total))

        await guarded(interaction, "/pending", work)

    @app_commands.command(name="queue", description="Replies waiting to be posted, failed or dead")
    async def queue(self, interaction: discord.Interaction) -> None:
        """The outbox (ephemeral)."""

        async def work() -> None:
            _, scope = seen(interaction)
            replies = await self.core.store.replies.in_states(_QUEUE_STATES, limit=50, brands=scope)
            await tell(interaction, queue_text(replies))

        await guarded(interaction, "/queue", work)

    @app_commands.command(
        name="sources", description="Health of every source: last success, errors, rate limit left"
    )
    async def sources(self, interaction: discord.Interaction) -> None:
        """One health line per configured source (ephemeral)."""

        async def work() -> None:
            _, scope = seen(interaction)
            self.core.tenancy.require_team(scope, SOURCES)
            names = [r.source.name for r in self.core.runners]
            await tell(interaction, sources_text(await health_lines(self.core.store, names)))

        await guarded(interaction, "/sources", work)

    @app_commands.command(name="mention", description="Show one mention with its buttons")
    @app_commands.describe(id="The mention's number, as in its alert (#12)")
    async def mention(
        self, interaction: discord.Interaction, id: app_commands.Range[int, 1, 999_999_999_999]
    ) -> None:
        """Post the mention's alert here; this copy is the one kept up to date from now on
        (an approver of its brand, in a channel that may see it)."""

        async def work() -> None:
            await decider(interaction, id, "bring an alert here")
            _, embed, view = await current_alert(self.core, id)
            if view is None:
                sent = await interaction.response.send_message(
                    embed=embed, allowed_mentions=NO_PINGS
                )
            else:
                sent = await interaction.response.send_message(
                    embed=embed, view=view, allowed_mentions=NO_PINGS
                )
            message_id = sent.message_id or (await interaction.original_response()).id
            ref = f"{interaction.channel_id}:{message_id}"
            await self.core.store.mentions.set_alert_ref(id, FRONTEND, ref)
            await self.core.auto_drafts.shown(id)  # opened: write its owed draft

        await guarded(interaction, "/mention", work)


async def setup(bot: commands.Bot) -> None:
    """Load the cog (extension entry point)."""
    await bot.add_cog(Stats(bot))
