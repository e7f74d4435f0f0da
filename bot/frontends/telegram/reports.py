"""The read-only Telegram commands: /pending, /queue, /sources and /stats.

Each answers in Telegram HTML, shows only the brands the chat may see (see access.py), and
leaves the error boundary to the command wrapper in handlers.py.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.app import Core
from bot.domain.states import UNPOSTED
from bot.frontends.telegram.access import Access
from bot.frontends.telegram.chat import TelegramChat
from bot.frontends.telegram.render import esc, fit_lines, safe, tg_len
from bot.services.charts import chart_png
from bot.services.health import health_lines
from bot.services.stats import compute_stats, parse_period, stats_lines
from bot.services.tenancy import SOURCES

log = logging.getLogger(__name__)

_CAPTION_LIMIT = 1024
"""sendPhoto caption limit (text after entity parsing)."""


class Reports:
    """What is waiting, what is queued, how the sources are, and the figures."""

    def __init__(self, core: Core, chat: TelegramChat, access: Access) -> None:
        self.core = core
        self.chat = chat
        self.access = access

    async def pending(self, update: Update, args: list[str], rest: str) -> str:
        """/pending [brand]: mentions waiting for a decision."""
        _, scope = await self.access.seen(update)
        brand = self.core.tenancy.brand(scope, args[0] if args else None)
        mentions = await self.core.alerts.pending(brand=brand, limit=30, brands=scope)
        if not mentions:
            return "Nothing is waiting for a decision. 🎉"
        total = await self.core.alerts.pending_count(brand=brand, brands=scope)
        lines = [f"<b>{total} waiting for a decision</b> (open one with /mention ID):"]
        for m in mentions:
            who = m.author.handle or m.author.display_name or "?"
            lines.append(
                f"{'🚨 ' if m.urgent else ''}<b>#{m.id}</b> {esc(m.state.value)} · "
                f"{safe(m.platform, 20)} · {safe(who, 30)}: {safe(' '.join(m.text.split()), 90)}"
            )
        return fit_lines(lines)

    async def sources(self, update: Update, args: list[str], rest: str) -> str:
        """/sources: the health of every source (the team only)."""
        _, scope = await self.access.seen(update)
        self.core.tenancy.require_team(scope, SOURCES)
        names = [r.source.name for r in self.core.runners]
        lines = await health_lines(self.core.store, names)
        return fit_lines([safe(line, 600) for line in lines] or ["No sources configured."])

    async def queue(self, update: Update, args: list[str], rest: str) -> str:
        """/queue: replies waiting to be posted."""
        _, scope = await self.access.seen(update)
        replies = await self.core.store.replies.in_states(UNPOSTED, limit=50, brands=scope)
        if not replies:
            return "The outbox is empty."
        return fit_lines(
            [
                f"<b>#{r.mention_id}</b> {esc(r.state.value)} via {esc(r.publisher)}, "
                f"{r.attempts} tries" + (f" — {safe(r.error, 200)}" if r.error else "")
                for r in replies
            ]
        )

    async def stats(self, update: Update, args: list[str], rest: str) -> str:
        """/stats [period] [brand]: the figures with a chart; text alone if the chart fails."""
        _, scope = await self.access.seen(update)
        period = parse_period(args[0] if args else None)
        brand = self.core.tenancy.only_brand(scope, args[1] if len(args) > 1 else None)
        stats = await compute_stats(self.core.store, period, brand)
        lines = stats_lines(stats)
        plain = "\n".join(lines)
        text = f"<pre>{esc(plain)}</pre>"
        message = update.effective_message
        assert message is not None
        label = self.core.brand_label(brand) if brand else None
        try:
            png = await chart_png(self.core.store, stats, label=label)
        except Exception:
            log.exception("stats chart failed; sending the figures as text only")
            return text
        # The figures ride as the photo's caption when they fit, else as their own message.
        fits = tg_len(plain) <= _CAPTION_LIMIT
        caption = text if fits else esc(lines[0])
        try:
            await self.chat.call(
                lambda: message.reply_photo(png, caption=caption, parse_mode=ParseMode.HTML)
            )
        except TelegramError as exc:
            log.warning("could not send the stats chart: %s", exc)
            return text
        return "" if fits else text
