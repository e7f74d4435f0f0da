"""The Discord adapter of the core's alert delivery: renders and sends alerts, digests, edits and
notices to a brand's channel.

The core's :class:`~bot.services.alert_delivery.AlertDelivery` owns routing, Discord's limits (5
messages per 5 s per channel; overflow grouped into digests, urgent first, none dropped), alert
references and refreshes; this module only speaks Discord. A posted alert's place is
``"channel_id:message_id"``, so a later change edits it in place, after a restart too.
Optionally each alert opens a thread for the team's discussion (``DISCORD_ALERT_THREADS``); in a
forum channel every alert is a post of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

import aiohttp
import discord

from bot.domain.models import Draft, Mention, Reply
from bot.frontends.discord.bot import ParleyBot
from bot.frontends.discord.interactions import NO_PINGS
from bot.frontends.discord.render import clean, defuse, plain, render_digest
from bot.frontends.discord.views import alert_message, parse_ref
from bot.presentation import alert_view
from bot.services.throttle import OutgoingAlert, RateLimited

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
_RETRY_SECONDS = 5.0
"""Pause of a channel after a network error or a Discord 5xx (the alert is sent again)."""


def _channel_id(dest: Hashable) -> int:
    if not isinstance(dest, int):  # pragma: no cover - route gives channel ids only
        raise TypeError(f"not a Discord channel id: {dest!r}")
    return dest


def thread_name(mention: Mention) -> str:
    """'#12 @ann: the start of the text' within Discord's 100 characters (plain text)."""
    who = mention.author.handle or mention.author.display_name or "?"
    text = " ".join(mention.text.split())
    return plain(defuse(f"#{mention.id} {who}: {text}"), THREAD_NAME_LIMIT)


class DiscordAlerts:
    """Alerts to brand channels, edited in place; notices to the alert channel."""

    def __init__(self, bot: ParleyBot) -> None:
        self.bot = bot
        self.core = bot.core

    def route(self, brand: str) -> int | None:
        """Where a brand's alerts go: its route, else DISCORD_ALERT_CHANNEL_ID."""
        return self.bot.alert_channel_id(brand)

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        """Post one alert, rendered from the mention as it is now; ``"channel:message"``."""
        mention = alert.mention
        embed, view = await alert_message(self.core, mention, list(alert.drafts), alert.reply)
        message = await self._post(_channel_id(dest), embed, view, thread_name(mention))
        return None if message is None else f"{message.channel.id}:{message.id}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message (when a channel is busy)."""
        label = self.core.brand_label
        views = [
            alert_view(a.mention, list(a.drafts), a.reply, label(a.mention.brand)) for a in alerts
        ]
        await self._post(_channel_id(dest), render_digest(views), None, None)

    async def notice(self, text: str) -> None:
        """Send a notice to the default alert channel, if there is one."""
        if self.bot.config.alert_channel_id is None:
            return
        target = self.bot.get_partial_messageable(self.bot.config.alert_channel_id)
        try:
            await target.send(plain(f"⚠️ {clean(text)}"), allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.warning("could not send a notice to Discord: %s", exc)

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

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        """Re-render a posted alert in place."""
        where = parse_ref(ref)
        if where is None:
            return
        channel_id, message_id = where
        embed, view = await alert_message(self.core, mention, drafts, reply)
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        try:
            await message.edit(embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            log.info("the alert of mention #%d was deleted; not updated", mention.id)
        except discord.HTTPException as exc:
            log.warning("could not update the alert of mention #%d: %s", mention.id, exc)
