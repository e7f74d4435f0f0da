"""Alerts cog: posts each new mention to its brand's channel and keeps that message up to date.

Alerts leave through the platform-neutral throttle with Discord's limits (5 messages per 5 s per
channel; overflow grouped into digests, urgent first, none dropped). A posted alert's place is
stored as ``"channel_id:message_id"``, so a later change edits it in place, after a restart too.
Optionally each alert opens a thread for the team's discussion (``DISCORD_ALERT_THREADS``); in a
forum channel every alert is a post of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

import aiohttp
import discord
from discord.ext import commands

from bot.domain.models import Draft, Mention, Reply
from bot.events import Event, MentionAlert, MentionChanged, Notice
from bot.frontends.discord.render import clean, defuse, plain, render_digest
from bot.frontends.discord.views import (
    FRONTEND,
    NO_PINGS,
    alert_message,
    parley_bot,
    parse_ref,
)
from bot.presentation import alert_view
from bot.services.throttle import (
    DISCORD_LIMITS,
    OutgoingAlert,
    RateLimited,
    Throttle,
    ThrottleLimits,
)

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
_RETRY_SECONDS = 5.0
"""Pause of a channel after a network error or a Discord 5xx (the alert is sent again)."""
_MAX_REMEMBERED = 1000


def _channel_id(dest: Hashable) -> int:
    if not isinstance(dest, int):  # pragma: no cover - we submit channel ids only
        raise TypeError(f"not a Discord channel id: {dest!r}")
    return dest


def thread_name(mention: Mention) -> str:
    """'#12 @ann: the start of the text' within Discord's 100 characters (plain text)."""
    who = mention.author.handle or mention.author.display_name or "?"
    text = " ".join(mention.text.split())
    return plain(defuse(f"#{mention.id} {who}: {text}"), THREAD_NAME_LIMIT)


class Alerts(commands.Cog):
    """New alerts through the throttle; changes edited in place; notices to the alert channel."""

    def __init__(self, bot: commands.Bot, *, limits: ThrottleLimits = DISCORD_LIMITS) -> None:
        self.bot = parley_bot(bot)
        self.core = self.bot.core
        self.throttle = Throttle(self._send_alert, self._send_digest, limits)
        self._changed_while_queued: dict[int, None] = {}
        """Mentions that changed while their alert waited in the throttle (edited once sent)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Send queued alerts until ``stop`` (then for the throttle's grace period)."""
        await self.throttle.run(stop)

    async def on_core_event(self, event: Event) -> None:
        """A new alert is queued; a change edits the alert; a notice goes to the alert channel."""
        if isinstance(event, MentionAlert):
            channel = self.bot.alert_channel_id(event.mention.brand)
            if channel is None:
                log.warning(
                    "no Discord channel for brand %s: set DISCORD_ALERT_CHANNEL_ID",
                    event.mention.brand,
                )
                return
            self.throttle.submit(channel, OutgoingAlert.from_event(event))
        elif isinstance(event, MentionChanged):
            await self.on_change(event)
        elif isinstance(event, Notice) and self.bot.config.alert_channel_id is not None:
            target = self.bot.get_partial_messageable(self.bot.config.alert_channel_id)
            try:
                await target.send(plain(f"⚠️ {clean(event.text)}"), allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                log.warning("could not send a notice to Discord: %s", exc)

    # ---- posting ------------------------------------------------------------------------

    async def _send_alert(self, dest: Hashable, alert: OutgoingAlert) -> None:
        """Post one alert (throttle callback) and remember where it is."""
        mention = alert.mention
        embed, view = await alert_message(self.core, mention, list(alert.drafts), None)
        message = await self._post(_channel_id(dest), embed, view, thread_name(mention))
        if message is None:
            return
        ref = f"{message.channel.id}:{message.id}"
        await self.core.store.set_alert_ref(mention.id, FRONTEND, ref)
        if mention.id in self._changed_while_queued:
            del self._changed_while_queued[mention.id]
            await self.refresh(mention.id)

    async def _send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message (throttle callback, when a channel is busy)."""
        views = [
            alert_view(a.mention, list(a.drafts), None, self.core.brand_label(a.mention.brand))
            for a in alerts
        ]
        await self._post(_channel_id(dest), render_digest(views), None, None)
        for alert in alerts:
            self._changed_while_queued.pop(alert.mention.id, None)

    async def _post(
        self,
        channel_id: int,
        embed: discord.Embed,
        view: discord.ui.View | None,
        thread: str | None,
    ) -> discord.Message | None:
        """Send a message for the throttle: a 429, a network error or a 5xx becomes
        RateLimited (the channel pauses and the alert is sent again); a refusal is logged."""
        try:
            return await self._send(channel_id, embed, view, thread)
        except discord.RateLimited as exc:
            raise RateLimited(exc.retry_after) from None
        except discord.HTTPException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise RateLimited(_RETRY_SECONDS) from exc
            log.error("Discord refused an alert for channel %s: %s", channel_id, exc)
        except (aiohttp.ClientError, OSError) as exc:
            raise RateLimited(_RETRY_SECONDS) from exc
        return None

    async def _send(
        self,
        channel_id: int,
        embed: discord.Embed,
        view: discord.ui.View | None,
        thread: str | None,
    ) -> discord.Message:
        channel = self.bot.get_channel(channel_id)
        if isinstance(channel, discord.ForumChannel):
            name = thread or plain(embed.title or "Parley", THREAD_NAME_LIMIT)
            if view is None:
                post = await channel.create_thread(
                    name=name, embed=embed, allowed_mentions=NO_PINGS
                )
            else:
                post = await channel.create_thread(
                    name=name, embed=embed, view=view, allowed_mentions=NO_PINGS
                )
            return post.message
        # With its guild, so the sent message has one: discord.py opens threads only then.
        guild = channel.guild if isinstance(channel, discord.abc.GuildChannel) else None
        target = self.bot.get_partial_messageable(
            channel_id, guild_id=guild.id if guild else self.bot.config.guild_id
        )
        if view is None:
            message = await target.send(embed=embed, allowed_mentions=NO_PINGS)
        else:
            message = await target.send(embed=embed, view=view, allowed_mentions=NO_PINGS)
        if thread and self.bot.config.alert_threads and not isinstance(channel, discord.Thread):
            try:
                await message.create_thread(name=thread, auto_archive_duration=1440)  # a day
            # The alert stands without its thread (and is never re-sent for it).
            except (discord.HTTPException, ValueError) as exc:
                log.warning("could not open a thread for an alert: %s", exc)
        return message

    # ---- keeping alerts up to date ----------------------------------------------------------

    async def on_change(self, event: MentionChanged) -> None:
        """Edit the alert in place; remember changes to alerts still waiting in the throttle."""
        if FRONTEND in event.mention.alert_refs:
            await self.edit_alert(event.mention, event.drafts, event.reply)
            return
        # The alert may have been posted since the event was made: look again.
        mention = await self.core.store.get_mention(event.mention.id)
        if FRONTEND in mention.alert_refs:
            await self.refresh(mention.id)
        elif self.bot.alert_channel_id(mention.brand) is not None:
            self._changed_while_queued[mention.id] = None
            while len(self._changed_while_queued) > _MAX_REMEMBERED:  # never alerted: forget
                del self._changed_while_queued[next(iter(self._changed_while_queued))]

    async def refresh(self, mention_id: int) -> None:
        """Edit a mention's alert to its current state, read from the store."""
        store = self.core.store
        await self.edit_alert(
            await store.get_mention(mention_id),
            await store.current_drafts(mention_id),
            await store.reply_for_mention(mention_id),
        )

    async def edit_alert(self, mention: Mention, drafts: list[Draft], reply: Reply | None) -> None:
        """Re-render a mention's alert message in place (if it was posted)."""
        ref = parse_ref(mention.alert_refs.get(FRONTEND))
        if ref is None:
            return
        channel_id, message_id = ref
        embed, view = await alert_message(self.core, mention, drafts, reply)
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        try:
            await message.edit(embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            log.info("the alert of mention #%d was deleted; not updated", mention.id)
        except discord.HTTPException as exc:
            log.warning("could not update the alert of mention #%d: %s", mention.id, exc)


async def setup(bot: commands.Bot) -> None:
    """Load the cog (extension entry point)."""
    await bot.add_cog(Alerts(bot))
