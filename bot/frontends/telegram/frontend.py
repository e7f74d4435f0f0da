"""The Telegram frontend: the PTB Application's lifecycle, alerts out, edits in place.

The Application is started by hand (not ``run_polling``) so it shares the event loop with
the pipeline and the outbox. Alerts are delivered by the core's alert-delivery service
(Telegram's per-chat, per-group and global limits; overflow becomes digests; 429s pause and
resend); :class:`TelegramAlerts` is its adapter, which only renders and sends. Every later change
to a mention edits its alert message in place, found through the alert reference stored in
SQLite, so this also works after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import SecretStr
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.app import Core
from bot.connectors.http.inbound_limits import hardened_app, hardened_runner, parse_json
from bot.domain.models import Actor, Draft, Mention, Reply
from bot.events import Event, MentionChanged, Notice
from bot.frontends.ratelimit_logs import quiet_handled_rate_limits
from bot.frontends.telegram.handlers import Handlers
from bot.frontends.telegram.keyboards import alert_keyboard
from bot.frontends.telegram.link import TelegramLink
from bot.frontends.telegram.migration import ChatMoves, moved_text, settings_to_update
from bot.frontends.telegram.render import decision_line, esc, render_alert, render_digest
from bot.presentation import alert_view
from bot.services.alert_delivery import AlertDelivery
from bot.services.throttle import (
    TELEGRAM_LIMITS,
    ChatUnreachable,
    OutgoingAlert,
    RateLimited,
    ThrottleLimits,
)
from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Dest = tuple[int | str, int | None]
"""Where an alert goes: a chat id (or '@channel') and an optional forum topic id."""

FRONTEND = "telegram"
COMMANDS = (
    ("start", "What this bot does, your user id and this chat's id"),
    ("help", "The list of commands"),
    ("pending", "Mentions waiting for a decision"),
    ("queue", "Replies waiting to be posted"),
    ("sources", "Health of every source: last success, errors, rate limit left"),
    ("mention", "Show one mention with its buttons: /mention ID"),
    ("stats", "Numbers: /stats [24h|7d|30d] [brand]"),
    ("watch", "Watch rules: /watch list | add <brand> <name> <query> | remove <brand> <name>"),
    ("redraft", "New drafts following your words: /redraft ID <instruction>"),
    ("reload", "Re-read the reply templates and prompt files"),
    ("pause", "Hold new alerts"),
    ("resume", "Show held alerts and continue"),
)
ALLOWED_UPDATES = ["message", "callback_query"]
TgApp = Application[Any, Any, Any, Any, Any, Any]
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_ADMIN_CACHE_SECONDS = 300.0
_EDIT_TRIES = 3
_OFFLINE_STOP = 0.5
"""Seconds the poller may take to stop while Telegram is unreachable."""


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


_SECRETS: set[str] = set()


def _redact(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed record: logging reports it later
        return
    for secret in _SECRETS:
        message = message.replace(secret, "<redacted>")
    # Frozen now: PTB logs dicts it fills in later (a file's URL, token included).
    record.msg, record.args = message, None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        for secret in _SECRETS:
            text = text.replace(secret, "<redacted>")
        record.exc_text = text


def install_token_redactor(token: str) -> None:
    """Redact ``token`` from every log record, whichever logger creates it.

    PTB logs request URLs and file paths that contain the token (at DEBUG) on many child
    loggers, and logger filters do not see records of child loggers, so the redaction sits in
    the record factory, which every record goes through.
    """
    if not token:
        return
    if not _SECRETS:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact(record)
            return record

        logging.setLogRecordFactory(factory)
    _SECRETS.add(token)
    for name in ("httpx", "httpcore"):  # they log every request URL at INFO
        logging.getLogger(name).setLevel(logging.WARNING)


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


def build_application(config: TelegramConfig, rate_limiter: BaseRateLimiter[Any]) -> TgApp:
    """The PTB Application, pointed at the configured Bot API server (files included)."""
    return (
        ApplicationBuilder()
        .token(config.token.get_secret_value())
        .base_url(config.base_url)
        .base_file_url(config.base_file_url)
        .rate_limiter(rate_limiter)
        .concurrent_updates(16)  # a slow Draft must not hold up other presses
        .build()
    )


def _dest(value: Hashable) -> Dest:
    if not isinstance(value, tuple) or len(value) != 2:  # pragma: no cover - route gives Dests
        raise TypeError(f"not a Telegram destination: {value!r}")
    return value


class TelegramAlerts:
    """The alert-delivery adapter: renders and sends alerts, digests, edits and notices;
    a 429 or a network failure becomes RateLimited (the delivery service pauses and resends)."""

    def __init__(self, frontend: TelegramFrontend) -> None:
        self.frontend = frontend

    def route(self, brand: str) -> Dest | None:
        """Where a brand's alerts go (see TelegramFrontend.route)."""
        return self.frontend.route(brand)

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        """Post one alert, rendered from the mention as it is now; ``"chat:message"``."""
        html, keyboard = await self.frontend.render(alert.mention, list(alert.drafts), alert.reply)
        message = await self._send(_dest(dest), html, keyboard)
        return None if message is None else f"{message.chat_id}:{message.message_id}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        """Post several alerts as one message (when a chat's rate is spent)."""
        label = self.frontend.core.brand_label
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
        html, keyboard = await self.frontend.render(mention, drafts, reply)
        await self.frontend.edit(where[0], where[1], html, keyboard)

    async def notice(self, text: str) -> None:
        """Send a notice to the default alert chat, if there is one."""
        chat = self.frontend.alert_chat
        if chat is None:
            return
        try:
            await self._notice(chat, text)
        except ChatMigrated as exc:
            await self.frontend.migrated(chat, exc.new_chat_id)
            await self._notice(exc.new_chat_id, text)

    async def _notice(self, chat: int | str, text: str) -> None:
        bot = self.frontend.bot
        await self.frontend._call(
            lambda: bot.send_message(chat, f"⚠️ {esc(text)}", parse_mode=ParseMode.HTML)
        )

    async def _send(
        self, dest: Dest, html: str, keyboard: InlineKeyboardMarkup | None
    ) -> Message | None:
        """sendMessage: a 429 becomes RateLimited, as does a network failure; a refused
        message is logged, not retried forever; a group that became a supergroup is followed."""
        chat, topic = dest
        try:
            message = await self.frontend.bot.send_message(
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
            await self.frontend.migrated(chat, exc.new_chat_id)
            return await self._send((exc.new_chat_id, None), html, keyboard)
        except BadRequest as exc:
            log.error("Telegram refused an alert for chat %s: %s", chat, exc.message)
        except NetworkError as exc:
            self.frontend.link.lost(exc)  # says so once; the retries are quiet
            raise ChatUnreachable(5.0) from exc
        except TelegramError as exc:  # Forbidden: the bot was removed from the chat
            log.error("cannot post to Telegram chat %s: %s", chat, exc.message)
        else:
            self.frontend.link.heard()
            return message
        return None


class TelegramFrontend:
    """Alerts, buttons and commands in Telegram, calling the same core as the console."""

    name = FRONTEND

    def __init__(
        self,
        core: Core,
        config: TelegramConfig,
        *,
        limits: ThrottleLimits = TELEGRAM_LIMITS,
        rate_limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        self.core = core
        self.config = config
        install_token_redactor(config.token.get_secret_value())
        quiet_handled_rate_limits()
        # AIORateLimiter keeps every request (edits, answers) within Telegram's limits; with
        # max_retries=0 a 429 surfaces, so the delivery service or _call pauses and resends.
        self.application = build_application(config, rate_limiter or AIORateLimiter())
        self.handlers = Handlers(self)
        self.handlers.register(self.application)
        self.application.add_handler(
            MessageHandler(filters.StatusUpdate.MIGRATE, self._on_migrate), group=-1
        )
        self.link = TelegramLink(self, [BotCommand(c, d) for c, d in COMMANDS])
        self.moves = ChatMoves(core.store.db, core.tenancy)
        self.alerts = TelegramAlerts(self)
        self.delivery = AlertDelivery(core.store, FRONTEND, self.alerts, limits)
        core.deliveries.register(self.delivery)
        self._ready = asyncio.Event()
        self._admins: tuple[float, frozenset[int]] = (0.0, frozenset())
        self._admins_lock = asyncio.Lock()
        core.bus.subscribe(self.name, self.on_event, alerts=False)  # the delivery reads them

    @property
    def bot(self) -> Bot:
        """The PTB bot (valid once the Application is initialised)."""
        bot: Bot = self.application.bot
        return bot

    # ---- lifecycle ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retried with back-off until Telegram answers; a refused token raises
        ConfigError), start the Application (polling or webhook), serve until ``stop``, stop in
        reverse. At stop, alerts the chat cannot take now stay queued for the next start."""
        app = self.application
        await self.moves.load()
        try:
            if not await self.link.connect(stop):
                return
            await app.start()
            webhook: web.AppRunner | None = None
            if self.config.webhook_url:
                webhook = await self._start_webhook()
            else:
                assert app.updater is not None
                await app.updater.start_polling(
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=False,
                    error_callback=self.link.polling_failed,
                )
            self._ready.set()
            log.info("Telegram bot @%s is running", self.bot.username)
            try:
                async with asyncio.TaskGroup() as tg:
                    delivery = tg.create_task(self.delivery.run(stop))
                    tg.create_task(self.link.watch(stop))
                    await stop.wait()
                    if self.link.outage.down:  # nothing can be posted: no grace period
                        delivery.cancel()
            finally:
                self._ready.clear()
                if webhook is not None:
                    await webhook.cleanup()
                elif app.updater is not None and app.updater.running:
                    await self._stop_polling()
                await app.stop()
        finally:
            await app.shutdown()

    async def _stop_polling(self) -> None:
        """Stop getUpdates. Offline, PTB would finish its back-off sleep (up to 30 s) and try to
        confirm the last updates: cut short instead (they are fetched again next start)."""
        assert self.application.updater is not None
        limit = _OFFLINE_STOP if self.link.outage.down else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.application.updater.stop(), limit)

    async def _start_webhook(self) -> web.AppRunner:
        """Receive updates over HTTPS from Telegram (behind your reverse proxy), checked by the
        secret token header; the Application processes them as with polling."""
        assert self.config.webhook_url is not None
        secret = (
            self.config.webhook_secret.get_secret_value()
            if self.config.webhook_secret
            else secrets.token_urlsafe(32)
        )

        async def receive(request: web.Request) -> web.Response:
            header = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
            if not hmac.compare_digest(header.encode(), secret.encode()):
                return web.Response(status=403)
            data, invalid = parse_json(await request.read())
            if invalid is not None:
                return web.Response(status=400)
            try:
                update = Update.de_json(data, self.bot)
            except (ValueError, TypeError, KeyError):
                return web.Response(status=400)
            await self.application.update_queue.put(update)
            return web.Response()

        server = hardened_app(client_max_size=1024**2)  # slow or huge bodies: 408/413
        path = "/" + self.config.webhook_url.split("://", 1)[1].partition("/")[2]
        server.router.add_post(path, receive)
        runner = hardened_runner(server)  # slow headers: cut off
        await runner.setup()
        await web.TCPSite(runner, self.config.webhook_listen, self.config.webhook_port).start()
        await self.bot.set_webhook(
            self.config.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )
        log.info("Telegram webhook listening on port %d", self.config.webhook_port)
        return runner

    # ---- who is who ---------------------------------------------------------------------

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
                members = await self._call(lambda: self.bot.get_chat_administrators(chat))
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
            await self._call(lambda: self.bot.send_message(new, f"⚠️ {esc(text)}"))
        except TelegramError as exc:
            log.warning("could not tell Telegram chat %s about its new id: %s", new, exc)

    async def _on_migrate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The service message of a group's upgrade (in the old group or in the new one)."""
        message = update.effective_message
        if message is None:
            return
        if message.migrate_to_chat_id is not None:
            await self.migrated(message.chat_id, message.migrate_to_chat_id)
        elif message.migrate_from_chat_id is not None:
            await self.migrated(message.migrate_from_chat_id, message.chat_id)

    # ---- core events --------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Changes edit the alert in place and notices are sent, through the delivery service;
        alerts need nothing here (the service reads them from the store). Nothing waits for
        Telegram: a change it cannot take now (not connected, unreachable, stopping) is stored
        and shown at the next connection, a notice is held until then."""
        if isinstance(event, MentionChanged):
            await self._on_change(event)
        elif isinstance(event, Notice):
            if not self._ready.is_set() or self.link.outage.down:
                self.link.notices.hold(event.text)
                return
            try:
                await self.delivery.on_event(event)
            except NetworkError as exc:
                self.link.lost(exc)
                self.link.notices.hold(event.text)

    async def _on_change(self, event: MentionChanged) -> None:
        mention_id = event.mention.id
        if not self._ready.is_set() or self.link.outage.down:
            await self.link.owe(mention_id)
            return
        try:
            await self.delivery.on_event(event)
        except NetworkError as exc:
            self.link.lost(exc)
            await self.link.owe(mention_id)
        except asyncio.CancelledError:  # stopping with the edit in flight
            await self.link.owe(mention_id)
            raise
        else:
            self.link.heard()

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
            await self._call(
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

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
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
