"""The Telegram frontend: the PTB Application's lifecycle, alerts out, edits in place.

The Application is started by hand (not ``run_polling``) so it shares the event loop with
the pipeline and the outbox. Alerts are delivered by the core's alert-delivery service
(Telegram's per-chat, per-group and global limits; overflow becomes digests; 429s pause and
resend); its adapter, which only renders and sends, is
:class:`~bot.frontends.telegram.chat.TelegramAlerts`. Every later change to a mention edits its
alert message in place, found through the alert reference stored in SQLite, so this also works
after a restart.

The frontend builds its parts in order, each given what it uses: the Bot API side
(:class:`~bot.frontends.telegram.chat.TelegramChat`), the alert adapter and its delivery, the
connection watch (bot/frontends/telegram/link.py) and the update handlers (handlers.py, which
builds review.py, edits.py, reports.py and controls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from typing import Any

from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    Update,
)
from telegram.error import NetworkError
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    BaseRateLimiter,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import Core
from bot.connectors.http.inbound_limits import hardened_app, hardened_runner, parse_json
from bot.events import Event, MentionChanged, Notice
from bot.frontends.ratelimit_logs import quiet_handled_rate_limits
from bot.frontends.telegram.chat import (
    FRONTEND,
    TelegramAlerts,
    TelegramChat,
    TelegramConfig,
    TgApp,
)
from bot.frontends.telegram.handlers import Handlers
from bot.frontends.telegram.link import Contact, TelegramLink
from bot.frontends.telegram.migration import ChatMoves
from bot.services.throttle import (
    TELEGRAM_LIMITS,
    ThrottleLimits,
)

log = logging.getLogger(__name__)

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
_OFFLINE_STOP = 0.5
"""Seconds the poller may take to stop while Telegram is unreachable."""


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
        self.moves = ChatMoves(core.store.db, core.tenancy)
        contact = Contact()
        self.chat = TelegramChat(core, config, self.application, self.moves, contact)
        self.alerts = TelegramAlerts(self.chat)
        self.delivery = core.deliveries.add(FRONTEND, self.alerts, limits)
        commands = [BotCommand(c, d) for c, d in COMMANDS]
        self.link = TelegramLink(
            self.application, commands, contact, self.delivery, self.alerts.notice
        )
        self.handlers = Handlers(core, self.chat)
        self.handlers.register(self.application)
        self.application.add_handler(
            MessageHandler(filters.StatusUpdate.MIGRATE, self._on_migrate), group=-1
        )
        self._ready = asyncio.Event()
        core.bus.subscribe(self.name, self.on_event, alerts=False)  # the delivery reads them

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def bot(self) -> Bot:
        """The PTB bot (valid once the Application is initialised)."""
        bot: Bot = self.chat.bot
        return bot

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
            log.info("Telegram bot @%s is running", self.chat.bot.username)
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

    async def _on_migrate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The service message of a group's upgrade (in the old group or in the new one)."""
        message = update.effective_message
        if message is None:
            return
        if message.migrate_to_chat_id is not None:
            await self.chat.migrated(message.chat_id, message.migrate_to_chat_id)
        elif message.migrate_from_chat_id is not None:
            await self.chat.migrated(message.migrate_from_chat_id, message.chat_id)

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
