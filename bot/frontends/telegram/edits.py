"""The Edit button's conversation: a ForceReply prompt, the editor's answer, a preview.

An Edit press asks the editor (and only them) for the new text; their reply to that prompt
runs the core's ``edit`` command. A held text (the checks found problems) is answered with the
reasons and a Post anyway button, whose press turns that message into the preview.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from telegram import ForceReply, Message, Update, User
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.app import Core
from bot.errors import UserFacingError
from bot.frontends.telegram.chat import TelegramChat
from bot.frontends.telegram.keyboards import held_keyboard, preview_keyboard
from bot.frontends.telegram.render import esc, safe
from bot.services.review import NeedsConfirmation
from bot.services.review_commands import Order, Verb

log = logging.getLogger(__name__)

_EDIT_TTL = 3600.0
_MAX_PENDING_EDITS = 500


@dataclass(frozen=True)
class PendingEdit:
    """An Edit press waiting for the editor's reply to the ForceReply prompt."""

    user_id: int
    mention_id: int
    at: float


class EditReplies:
    """The prompts waiting for an editor's text, and what their answers do."""

    def __init__(self, core: Core, chat: TelegramChat) -> None:
        self.core = core
        self.chat = chat
        self.pending_edits: dict[tuple[int, int], PendingEdit] = {}
        """(chat id, ForceReply prompt message id) → who may answer it, for which mention."""

    async def ask(self, mention_id: int, alert: Message, user: User) -> None:
        """Send a ForceReply prompt aimed at the editor (``selective`` + a mention of them)."""
        who = f'<a href="tg://user?id={user.id}">{safe(user.first_name, 64)}</a>'
        prompt = await self.chat.call(
            lambda: alert.get_bot().send_message(
                alert.chat_id,
                f"✏️ {who}, reply to this message with the new text for <b>#{mention_id}</b>.",
                parse_mode=ParseMode.HTML,
                message_thread_id=alert.message_thread_id if alert.is_topic_message else None,
                reply_markup=ForceReply(
                    selective=True, input_field_placeholder=f"Reply for #{mention_id}"
                ),
            )
        )
        self._remember(
            prompt.chat_id, prompt.message_id, PendingEdit(user.id, mention_id, time.monotonic())
        )

    async def on_reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The editor's answer to a ForceReply prompt: save it, then offer a preview."""
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or message.reply_to_message is None:
            return
        key = (message.chat_id, message.reply_to_message.message_id)
        pending = self.pending_edits.get(key)
        if pending is None or pending.user_id != user.id:
            return  # a reply to something else, or someone other than the editor
        del self.pending_edits[key]
        try:
            actor = await self.chat.actor(user)
            order = Order(Verb.EDIT, pending.mention_id, actor, text=message.text or "")
            draft = (await self.core.commands.run(order)).draft
            assert draft is not None
            answer = (
                f"Preview of your reply to <b>#{pending.mention_id}</b>:\n"
                f"<blockquote>{safe(draft.text)}</blockquote>"
            )
            markup = preview_keyboard(pending.mention_id, draft.variant)
        except NeedsConfirmation as held:
            answer, markup = _held_text(held), held_keyboard(pending.mention_id)
        except UserFacingError as exc:
            answer, markup = f"Sorry: {esc(str(exc))}.", None
        except Exception:
            log.exception("Telegram edit of #%d failed", pending.mention_id)
            answer, markup = "Sorry, that failed unexpectedly; the log has the details.", None
        await self.chat.answer(message, answer, markup)

    async def preview(self, mention_id: int, message: Message) -> None:
        """Turn the held-edit message into the preview of the kept text, with Approve."""
        draft = await self.core.store.drafts.selected(mention_id)
        if draft is None:
            return
        text = (
            f"Preview of your reply to <b>#{mention_id}</b> (kept despite the warnings):\n"
            f"<blockquote>{safe(draft.text)}</blockquote>"
        )
        markup = preview_keyboard(mention_id, draft.variant)
        await self.chat.edit(message.chat_id, message.message_id, text, markup)

    def _remember(self, chat_id: int, prompt_id: int, edit: PendingEdit) -> None:
        now = time.monotonic()
        for key in [k for k, v in self.pending_edits.items() if now - v.at > _EDIT_TTL]:
            del self.pending_edits[key]
        while len(self.pending_edits) >= _MAX_PENDING_EDITS:
            del self.pending_edits[next(iter(self.pending_edits))]
        self.pending_edits[(chat_id, prompt_id)] = edit


def _held_text(held: NeedsConfirmation) -> str:
    """The answer to a held edit: the reasons, and how to keep it anyway."""
    reasons = "\n".join(f"• {esc(reason)}" for reason in held.reasons)
    return (
        f"⚠️ Your reply to <b>#{held.mention_id}</b> was held:\n{reasons}\n"
        "Press <b>Post anyway</b> to keep it as written (the team log records it), "
        "or press Edit on the alert to write it again."
    )
