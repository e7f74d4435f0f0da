"""The Telegram frontend's connection: connect with back-off, notice outages, catch up after.

At start, ``getMe`` (PTB's ``initialize``) and ``setMyCommands`` are tried until Telegram
answers, with :class:`~bot.services.reconnect.Backoff`, one log line per attempt, while the
sources, the outbox and the console run on; a refused token is a ConfigError (exit status 78).
Later failures (polling, sends, edits) mark an :class:`~bot.services.reconnect.Outage`; while it
lasts, ``getMe`` is asked again with back-off. When Telegram answers again the alert chat hears it
once, the alert edits owed meanwhile (stored in ``alert_refresh``, so a restart keeps them) are
made and the queued alerts are sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram import BotCommand
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.errors import ConfigError
from bot.services.reconnect import (
    Backoff,
    HeldNotices,
    Outage,
    back_notice,
    one_line_errors,
    pause,
)
from bot.storage.chat_state import AlertRefreshRepo

if TYPE_CHECKING:
    from bot.frontends.telegram.frontend import TelegramFrontend

log = logging.getLogger(__name__)

REFUSED = (
    "Telegram refused TELEGRAM_BOT_TOKEN: create a new one with @BotFather (/token) "
    "and put it in .env"
)


class TelegramLink:
    """Connecting, outages and the catch-up after one, for a :class:`TelegramFrontend`."""

    def __init__(self, frontend: TelegramFrontend, commands: list[BotCommand]) -> None:
        self.frontend = frontend
        self.commands = commands
        self.outage = Outage()
        self.owed = AlertRefreshRepo(frontend.core.store.db, frontend.name)
        self._heard = asyncio.Event()
        self.notices = HeldNotices("Telegram")
        one_line_errors("telegram.ext.Updater")  # its last getUpdates at stop, when offline

    async def connect(self, stop: asyncio.Event) -> bool:
        """``getMe`` and the command list, retried until Telegram answers; False if ``stop``
        came first. A refused token raises ConfigError."""
        app = self.frontend.application
        backoff = Backoff()
        while True:
            try:
                await app.initialize()  # getMe; a no-op once it succeeded
                await app.bot.set_my_commands(self.commands)
                return True
            except InvalidToken:
                raise ConfigError([REFUSED]) from None
            except NetworkError as exc:
                self.outage.lost()
                delay = backoff.next()
                log.warning("cannot reach Telegram (%s); trying again in %.0f s", exc, delay)
                if await pause(stop, delay):
                    return False

    def lost(self, exc: Exception) -> None:
        """A request failed for want of a network: the outage starts (logged once)."""
        if self.outage.lost():
            log.warning("lost contact with Telegram (%s); retrying in the background", exc)

    def heard(self) -> None:
        """A request went through: during an outage, check at once that Telegram is back."""
        if self.outage.down:
            self._heard.set()

    def polling_failed(self, exc: TelegramError) -> None:
        """PTB's polling error callback: one line per failed getUpdates (PTB retries it)."""
        if isinstance(exc, NetworkError):
            self.lost(exc)
            log.info("Telegram polling failed (%s); PTB polls again shortly", exc)
        else:
            log.warning("Telegram polling failed: %s", exc)

    async def watch(self, stop: asyncio.Event) -> None:
        """While an outage lasts, ask ``getMe`` with back-off; catch up when it answers."""
        await self.back()  # an outage at start ended with the connection
        while not stop.is_set():
            if not self.outage.down:
                self.outage.changed.clear()
                changed = asyncio.ensure_future(self.outage.changed.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({changed, stopping}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                stopping.cancel()
                continue
            await self._probe(stop)

    async def _probe(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while self.outage.down:
            delay = backoff.next()
            log.info("Telegram still unreachable; asking again in %.0f s", delay)
            self._heard.clear()
            heard = asyncio.ensure_future(self._heard.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {heard, stopping}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
            heard.cancel()
            stopping.cancel()
            if stop.is_set():
                return
            try:
                await self.frontend.bot.get_me()
            except NetworkError:
                continue
            await self.back()

    async def back(self) -> None:
        """Telegram answered: if it was unreachable, say so once, make the owed edits and send
        what is queued."""
        lasted = self.outage.regained()
        if lasted is None:
            await self.catch_up()
            return
        queued = await self.frontend.delivery.throttle.backlog.total()
        text = back_notice("Telegram", lasted, queued)
        log.info("%s", text)
        try:
            await self.frontend.alerts.notice(text)
        except NetworkError as exc:
            self.lost(exc)
            return
        await self.catch_up()

    async def owe(self, mention_id: int) -> None:
        """This alert's edit could not be made now: stored, made at the next connection."""
        await self.owed.mark(mention_id)

    async def catch_up(self) -> None:
        """Show the held notices, make the owed alert edits, then wake the delivery for the
        queued alerts."""
        try:
            await self.notices.show(self.frontend.alerts.notice)
        except NetworkError as exc:
            self.lost(exc)
            return
        for mention_id in await self.owed.owed():
            try:
                await self.frontend.delivery.refresh(mention_id)
            except NetworkError as exc:
                self.lost(exc)
                return
            except TelegramError as exc:  # the bot left the chat, the message is gone…
                log.warning("could not update the alert of mention #%d: %s", mention_id, exc)
            await self.owed.done(mention_id)
        self.frontend.delivery.wake()
