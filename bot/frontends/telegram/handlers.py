"""Telegram updates into core calls: the command table, the error boundary, the registration.

The commands themselves live by what they do: review.py (the alert buttons, /mention,
/redraft), edits.py (the Edit button's reply), reports.py (/pending, /queue, /sources, /stats)
and controls.py (/watch, /reload, /pause, /resume); access.py says who is asking and from
where. One error boundary per command: a UserFacingError's text is shown, anything else is
logged with its traceback and answered with a generic apology (never ``str(exc)``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import Core
from bot.errors import UserFacingError
from bot.frontends.telegram.access import Access
from bot.frontends.telegram.chat import TelegramChat
from bot.frontends.telegram.controls import Controls
from bot.frontends.telegram.edits import EditReplies
from bot.frontends.telegram.render import esc
from bot.frontends.telegram.reports import Reports
from bot.frontends.telegram.review import Review

log = logging.getLogger(__name__)

Command = Callable[[Update, list[str], str], Awaitable[str]]
"""A slash command: the update, its words after the command, and that text whole."""

HELP = """<b>Parley</b> relays brand mentions here and posts the replies you approve.
Use the buttons under each alert: Approve, Edit, Reject, Ignore, Draft (new drafts), and
Shorter / Warmer / More formal / Brand language to rework the drafts.

/pending — mentions waiting for a decision
/queue — replies waiting to be posted
/sources — health of every source: last success, errors, rate limit left
/mention ID — show one mention with its buttons
/stats [24h|7d|30d] [brand] — volume, replies, response times, with a chart
/watch list [brand] — watch rules
/watch add [--urgent] &lt;brand&gt; &lt;name&gt; &lt;query&gt; — add a rule
/watch remove &lt;brand&gt; &lt;name&gt; — remove a rule added from chat
/redraft ID &lt;instruction&gt; — new drafts following your words
/reload — re-read the reply templates and prompt files
/pause, /resume — hold new alerts, then show them"""


class Handlers:
    """Every update handler of the frontend, built once and added to the Application."""

    def __init__(self, core: Core, chat: TelegramChat) -> None:
        self.chat = chat
        access = Access(core, chat)
        self.edits = EditReplies(core, chat)
        self.review = Review(core, chat, access, self.edits)
        reports = Reports(core, chat, access)
        controls = Controls(core, access)
        self.commands: dict[str, Command] = {
            "start": _start,
            "help": _help,
            "pending": reports.pending,
            "queue": reports.queue,
            "sources": reports.sources,
            "mention": self.review.mention,
            "stats": reports.stats,
            "watch": controls.watch,
            "redraft": self.review.redraft,
            "reload": controls.reload,
            "pause": controls.pause,
            "resume": controls.resume,
        }

    def register(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Add the handlers to the Application."""
        for name, command in self.commands.items():
            app.add_handler(CommandHandler(name, self._command(command)))
        app.add_handler(CallbackQueryHandler(self.review.on_callback))
        app.add_handler(
            MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, self.edits.on_reply)
        )

    def _command(self, command: Command) -> Callable[[Update, Any], Coroutine[Any, Any, None]]:
        """The command behind its error boundary, answering in the chat it came from."""

        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message = update.effective_message
            if message is None or update.effective_user is None:
                return
            text = message.text or ""
            rest = text.partition(" ")[2].strip()
            try:
                answer = await command(update, rest.split(), rest)
            except UserFacingError as exc:
                answer = f"Sorry: {esc(str(exc))}."
            except Exception:
                log.exception("Telegram command failed: %s", text.split(" ")[0][:40])
                answer = "Sorry, that failed unexpectedly; the log has the details."
            if answer:
                await self.chat.answer(message, answer)

        return handle


async def _start(update: Update, args: list[str], rest: str) -> str:
    """/start: what the bot does, with the user's, the chat's and the topic's ids."""
    assert update.effective_user is not None and update.effective_chat is not None
    message = update.effective_message
    topic = message.message_thread_id if message and message.is_topic_message else None
    ids = (
        f"Your user id: <code>{update.effective_user.id}</code>\n"
        f"This chat's id: <code>{update.effective_chat.id}</code>"
        + (f"\nThis topic's id: <code>{topic}</code>" if topic else "")
    )
    return f"{HELP}\n\n{ids}"


async def _help(update: Update, args: list[str], rest: str) -> str:
    """/help: the list of commands."""
    return HELP
