"""The console's read-only commands: list, show, queue, stats, sources and pending."""

from __future__ import annotations

import asyncio
import logging
import shlex
from pathlib import Path

from bot.app import Core
from bot.domain.models import Actor
from bot.domain.states import UNPOSTED, MentionState
from bot.errors import UserFacingError
from bot.frontends.console.render import ALERT_TEXT_LIMIT, render_alert, summary
from bot.frontends.console.review import split_id
from bot.localtime import stamp
from bot.presentation import alert_view, truncate
from bot.services.charts import chart_png
from bot.services.health import health_lines
from bot.services.stats import compute_stats, parse_period, stats_lines

log = logging.getLogger(__name__)

_LIST_DEFAULT = (MentionState.ALERTED, MentionState.DRAFTED, MentionState.APPROVED)


class Reports:
    """Mentions, the outbox, the sources and the figures, as plain text."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def newest(self, arg: str, actor: Actor) -> list[str]:
        """list [state|all]: the newest mentions, open ones by default."""
        states: list[MentionState] | None
        if not arg:
            states = list(_LIST_DEFAULT)
        elif arg == "all":
            states = None
        else:
            try:
                states = [MentionState(arg.lower())]
            except ValueError:
                names = ", ".join(s.value for s in MentionState)
                raise UserFacingError(f"unknown state {arg!r}; use one of {names} or all") from None
        mentions = await self.core.store.mentions.newest(states, limit=50)
        if not mentions:
            return ["Nothing here."]
        return [summary(m) for m in mentions]

    async def show(self, arg: str, actor: Actor) -> list[str]:
        """show ID: one mention in full, with drafts, reply and history."""
        mention_id, _ = split_id(arg)
        store = self.core.store
        await self.core.auto_drafts.shown(mention_id)  # opened: write its owed draft
        mention = await store.mentions.get(mention_id)
        drafts = await store.drafts.current(mention_id)
        reply = await store.replies.for_mention(mention_id)
        view = alert_view(mention, drafts, reply, self.core.brand_label(mention.brand))
        lines = render_alert(view, heading="Mention")
        lines[lines.index(f"   Text: {truncate(view.text, ALERT_TEXT_LIMIT)}")] = (
            f"   Text: {view.text}"
        )
        lines.append("   History:")
        for entry in await store.audit.trail("mention", mention_id):
            change = f"{entry.from_state} → {entry.to_state}" if entry.to_state else ""
            lines.append(
                f"     {stamp(entry.at)} {entry.actor}: {entry.action} {change}"
                + (f" ({entry.detail})" if entry.detail else "")
            )
        return lines

    async def queue(self, arg: str, actor: Actor) -> list[str]:
        """queue: replies waiting, sending, failed or to post by hand."""
        replies = await self.core.store.replies.in_states(UNPOSTED, limit=50)
        if not replies:
            return ["The outbox is empty."]
        return [
            f"reply #{r.id} for #{r.mention_id}: {r.state.value} via {r.publisher}, "
            f"{r.attempts} tries" + (f" — {r.error}" if r.error else "")
            for r in replies
        ]

    async def stats(self, arg: str, actor: Actor) -> list[str]:
        """stats [period] [brand] [chart FILE]: the figures, and a PNG chart if asked."""
        words = shlex.split(arg) if arg else []
        chart: str | None = None
        if "chart" in words:
            at = words.index("chart")
            if at != len(words) - 2:
                raise UserFacingError(
                    "name the file after 'chart', e.g. 'stats 7d acme chart stats.png'"
                )
            chart, words = words[at + 1], words[:at]
        period = parse_period(words[0] if words else None)
        brand = words[1] if len(words) > 1 else None
        if brand and self.core.config.brand(brand) is None:
            raise UserFacingError(f"unknown brand {brand!r}")
        stats = await compute_stats(self.core.store, period, brand)
        lines = stats_lines(stats)
        if chart is None:
            return lines
        label = self.core.brand_label(brand) if brand else None
        try:
            png = await chart_png(self.core.store, stats, label=label)
        except Exception:
            log.exception("stats chart failed")
            return [*lines, "Sorry, the chart failed; the log has the details."]
        path = Path(chart)
        try:
            await asyncio.to_thread(path.write_bytes, png)
        except OSError as exc:
            return [*lines, f"Sorry: cannot write the chart to {path}: {exc.strerror or exc}."]
        return [*lines, f"Chart saved to {path} ({len(png) // 1024 or 1} KB PNG)."]

    async def sources(self, arg: str, actor: Actor) -> list[str]:
        """sources: the health of every source."""
        lines = await health_lines(self.core.store, (r.source.name for r in self.core.runners))
        return lines or ["No sources configured."]

    async def pending(self, arg: str, actor: Actor) -> list[str]:
        """pending [brand]: alerted mentions awaiting a decision, urgent first, then oldest."""
        brand = arg or None
        if brand and self.core.config.brand(brand) is None:
            raise UserFacingError(f"unknown brand {brand!r}")
        alerts = self.core.alerts
        mentions = await alerts.pending(brand=brand, limit=50)
        total = await alerts.pending_count(brand=brand)
        lines = [f"{total} awaiting a decision (urgent first, then oldest):"] if total else []
        lines += [summary(m) for m in mentions]
        if total > len(mentions):
            lines.append(f"… and {total - len(mentions)} more")
        if alerts.paused:
            lines.append(f"Alerts are paused: {await alerts.held()} held. Type 'resume'.")
        return lines or ["Nothing is waiting for a decision."]
