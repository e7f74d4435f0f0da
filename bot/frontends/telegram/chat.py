"""Talking to Telegram: who a user is, where a brand's alerts go, rendering an alert, editing a
message, and :class:`TelegramAlerts`, the core alert delivery's adapter (it only renders and
sends; a 429 or a network failure becomes RateLimited, so the delivery service pauses and
resends).

:class:`TelegramChat` is shared by the update handlers, the alert adapter and the frontend's
lifecycle (bot/frontends/telegram/frontend.py), which builds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import SecretStr
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message, User
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application
from telegram.warnings import PTBDeprecationWarning

from bot.app import Core
from bot.domain.models import Actor, Draft, Mention, Reply
from bot.frontends.telegram.keyboards import alert_keyboard
from bot.frontends.telegram.link import Contact
from bot.frontends.telegram.migration import ChatMoves, moved_text, settings_to_update
from bot.frontends.telegram.render import decision_line, esc, render_alert, render_digest
from bot.presentation import alert_view
from bot.services.throttle import ChatUnreachable, OutgoingAlert, RateLimited
from bot.settings import Settings

log = logging.getLogger(__name__)

FRONTEND = "telegram"
TgApp = Application[Any, Any, Any, Any, Any, Any]
T = TypeVar("T")
Dest = tuple[int | str, int | None]
"""Where an alert goes: a chat id (or '@channel') and an optional forum topic id."""

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_ADMIN_CACHE_SECONDS = 300.0
_EDIT_TRIES = 3


@dataclass(frozen=True)
class TelegramConfig:
    """What the frontend needs from the settings."""

    token: SecretStr
    api_base_url: str = "https://api.telegram.org"
    alert_chat: int | str | None = None
    admins_are_approvers: bool = False
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramConfig:
        """Read the TELEGRAM_* settings (the token must be set)."""
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        return cls(
            token=settings.telegram_bot_token,
            api_base_url=settings.telegram_api_base_url,
            alert_chat=settings.telegram_alert_chat(),
            admins_are_approvers=settings.telegram_approvers()[1],
            webhook_url=settings.telegram_webhook_url,
            webhook_listen=settings.telegram_webhook_listen,
            webhook_port=settings.telegram_webhook_port,
            webhook_secret=settings.telegram_webhook_secret,
        )

    @property
    def base_url(self) -> str:
        """PTB's ``base_url``: every API request goes to ``{base_url}{token}/{method}``."""
        return self.api_base_url.rstrip("/") + "/bot"

    @property
    def base_file_url(self) -> str:
        """PTB's ``base_file_url``: file downloads go to the same (possibly self-hosted) server."""
        return self.api_base_url.rstrip("/") + "/file/bot"


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter's delay in seconds (PTB 22 warns about the int/timedelta migration)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, (int, float)) else value.total_seconds()


def parse_ref(ref: str) -> tuple[int | str, int] | None:
    """``"chat_id:message_id"`` back into its parts (None if malformed)."""
    chat, _, message = ref.rpartition(":")
    if not chat or not message.isdigit():
        return None
    return (chat if chat.startswith("@") else int(chat)), int(message)


def _dest(value: Hashable) -> Dest:
    if not isinstance(value, tuple) or len(value) != 2:  # pragma: no cover - route gives Dests
        raise TypeError(f"not a Telegram destination: {value!r}")
    return value


class TelegramAlerts:
    """The alert-delivery adapter: renders and sends alerts, digests, edits and notices;
    a 429 or a network failure becomes RateLimited (the delivery service pauses and resends)."""

    def __init__(self, chat: TelegramChat) -> None:
        self.chat = chat

    def route(self, brand: str) -> Dest | None:
        """Where a brand's alerts go (see TelegramChat.route)."""
        return self.chat.route(brand)

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        """Post one alert, rendered from the mention as it is now; ``"chat:message"``."""
        html, keyboard = await self.chat.render(alert.mention, list(alert.drafts), alert.reply)
        message = await self._send(_dest(dest), html, keyboard)
        return None if message is None else f"{message.chat_id}:{message.message_id}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message (when a chat's rate is spent)."""
        label = self.chat.core.brand_label
        views = [
            alert_view(a.mention, list(a.drafts), a.reply, label(a.mention.brand)) for a in alerts
        ]
        await self._send(_dest(dest), render_digest(views), None)

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        """Re-render a posted alert in place."""
        where = parse_ref(ref)
        if where is None:
            return
        html, keyboard = await self.chat.render(mention, drafts, reply)
        await self.chat.edit(where[0], where[1], html, keyboard)

    async def notice(self, text: str) -> None:
        """Send a notice to the default alert chat, if there is one."""
        chat = self.chat.alert_chat
        if chat is None:
            return
        try:
            await self._notice(chat, text)
        except ChatMigrated as exc:
            await self.chat.migrated(chat, exc.new_chat_id)
            await self._notice(exc.new_chat_id, text)

    async def _notice(self, chat: int | str, text: str) -> None:
        bot = self.chat.bot
        await self.chat.call(
            lambda: bot.send_message(chat, f"⚠️ {esc(text)}", parse_mode=ParseMode.HTML)
        )

    async def _send(
        self, dest: Dest, html: str, keyboard: InlineKeyboardMarkup | None
    ) -> Message | None:
        """sendMessage: a 429 becomes RateLimited, as does a network failure; a refused
        message is logged, not retried forever; a group that became a supergroup is followed."""
        chat, topic = dest
        try:
            message = await self.chat.bot.send_message(
                chat,
                html,
                parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
                reply_markup=keyboard,
                message_thread_id=topic,
            )
        except RetryAfter as exc:
            raise RateLimited(retry_seconds(exc)) from None
        except ChatMigrated as exc:
            await self.chat.migrated(chat, exc.new_chat_id)
            return await self._send((exc.new_chat_id, None), html, keyboard)
        except BadRequest as exc:
            log.error("Telegram refused an alert for chat %s: %s", chat, exc.message)
        except NetworkError as exc:
            self.chat.contact.lost(exc)  # says so once; the retries are quiet
            raise ChatUnreachable(5.0) from exc
        except TelegramError as exc:  # Forbidden: the bot was removed from the chat
            log.error("cannot post to Telegram chat %s: %s", chat, exc.message)
        else:
            self.chat.contact.heard()
            return message
        return None


class TelegramChat:
    """The Bot API as the frontend's parts use it (see the module docstring)."""

    def __init__(
        self,
        core: Core,
        config: TelegramConfig,
        application: TgApp,
        moves: ChatMoves,
        contact: Contact,
    ) -> None:
        self.core = core
        self.config = config
        self.application = application
        self.moves = moves
        """Groups that became supergroups: alerts and routing follow them."""
        self.contact = contact
        """Whether Telegram answers (the frontend's link watches it)."""
        self._admins: tuple[float, frozenset[int]] = (0.0, frozenset())
        self._admins_lock = asyncio.Lock()

    @property
    def bot(self) -> Bot:
        """The PTB bot (valid once the Application is initialised)."""
        bot: Bot = self.application.bot
        return bot

    async def actor(self, user: User) -> Actor:
        """The Actor for a Telegram user; ``admin`` only if Telegram says they are one."""
        roles: frozenset[str] = frozenset()
        if self.config.admins_are_approvers and user.id in await self.admin_ids():
            roles = frozenset({"admin"})
        name = f"@{user.username}" if user.username else user.full_name
        return Actor(platform=FRONTEND, user_id=str(user.id), display_name=name, roles=roles)

    async def admin_ids(self) -> frozenset[int]:
        """Administrators of the alert chat (cached; getChatAdministrators). Fails closed: while
        the list cannot be fetched, nobody is an administrator (a demoted one must not keep
        approving on an expired list); the next check asks Telegram again."""
        chat = self.alert_chat
        if chat is None:
            return frozenset()
        async with self._admins_lock:
            expires, ids = self._admins
            if time.monotonic() < expires:
                return ids
            self._admins = (0.0, frozenset())
            try:
                members = await self.call(lambda: self.bot.get_chat_administrators(chat))
            except TelegramError as exc:
                log.warning(
                    "could not list the alert chat's administrators, so nobody counts as one "
                    "until Telegram answers: %s",
                    exc,
                )
                return frozenset()
            ids = frozenset(m.user.id for m in members if not m.user.is_bot)
            self._admins = (time.monotonic() + _ADMIN_CACHE_SECONDS, ids)
            return ids

    def route(self, brand_name: str) -> Dest | None:
        """Where a brand's alerts go (its route, else the default alert chat)."""
        brand = self.core.config.brand(brand_name)
        chat = brand.route.telegram_chat_id if brand else None
        chat = chat if chat is not None else self.config.alert_chat
        if chat is None:
            return None
        return self.moves.resolve(chat), brand.route.telegram_topic_id if brand else None

    @property
    def alert_chat(self) -> int | str | None:
        """The default alert chat, where it is now (it may have become a supergroup)."""
        chat = self.config.alert_chat
        return None if chat is None else self.moves.resolve(chat)

    async def migrated(self, old: int | str, new: int) -> None:
        """The chat ``old`` became the supergroup ``new``: stored, alerts and routing follow,
        and the log and the new chat say which setting to update."""
        if not await self.moves.record(old, new):
            return
        text = moved_text(
            old, new, settings_to_update(self.core.config, self.config.alert_chat, old)
        )
        log.warning("%s", text)
        try:
            await self.call(lambda: self.bot.send_message(new, f"⚠️ {esc(text)}"))
        except TelegramError as exc:
            log.warning("could not tell Telegram chat %s about its new id: %s", new, exc)

    async def render(
        self, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        """An alert's HTML and buttons for the mention's current state."""
        view = alert_view(mention, drafts, reply, self.core.brand_label(mention.brand))
        decision = await self.core.review.decision(mention, reply)
        line = decision_line(decision) if decision else None
        html = render_alert(view, reply=reply, decision=line)
        return html, alert_keyboard(mention, drafts, reply)

    async def edit(
        self,
        chat: int | str,
        message_id: int,
        html: str,
        keyboard: InlineKeyboardMarkup | None,
    ) -> None:
        """editMessageText, tolerant of 'not modified' and of deleted messages."""
        try:
            await self.call(
                lambda: self.bot.edit_message_text(
                    html,
                    chat_id=chat,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                    reply_markup=keyboard,
                )
            )
        except ChatMigrated as exc:  # an alert posted before the group became a supergroup
            await self.migrated(chat, exc.new_chat_id)
        except BadRequest as exc:
            if "not modified" not in exc.message:
                log.warning(
                    "could not edit message %s in chat %s: %s", message_id, chat, exc.message
                )

    async def answer(
        self, message: Message, html: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message:
        """Reply to ``message`` in Telegram HTML, without link previews (through :meth:`call`)."""
        return await self.call(
            lambda: message.reply_text(
                html,
                parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
                reply_markup=markup,
            )
        )

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """A Bot API request outside the throttle: honour a 429's retry_after, a few times."""
        for attempt in range(_EDIT_TRIES):
            try:
                return await request()
            except RetryAfter as exc:
                if attempt == _EDIT_TRIES - 1:
                    raise
                delay = retry_seconds(exc)
                log.warning("Telegram: rate limited, retrying in %.0f s", delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
