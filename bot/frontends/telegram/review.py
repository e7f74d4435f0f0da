"""Review in Telegram: the alert buttons, /mention and /redraft, onto the core's command table.

Every press and command is re-checked by the core (bot/services/tenancy.py decides who may
decide where) and runs through ``core.commands`` (bot/services/review_commands.py); the alert
itself is updated from the core's MentionChanged event, not here. One error boundary per press:
a UserFacingError's text is the toast, anything else is logged and answered with an apology.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Message, Update, User
from telegram.ext import ContextTypes

from bot.app import Core
from bot.domain.models import Actor
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS, TWEAKS
from bot.errors import PermissionDenied, UserFacingError
from bot.frontends.telegram.access import Access, place_of
from bot.frontends.telegram.chat import TelegramChat
from bot.frontends.telegram.edits import EditReplies
from bot.frontends.telegram.keyboards import Action, Callback, decode
from bot.frontends.telegram.render import toast
from bot.services.review_commands import Order, Verb

log = logging.getLogger(__name__)

_VERBS = {
    Action.DRAFT: Verb.DRAFT,
    Action.SELECT: Verb.USE,
    Action.APPROVE: Verb.APPROVE,
    Action.POST_ANYWAY: Verb.POST_ANYWAY,
    Action.REJECT: Verb.REJECT,
    Action.IGNORE: Verb.IGNORE,
    Action.RETRY: Verb.RETRY,
    Action.CONFIRM: Verb.CONFIRM,
}
"""The buttons that run a command of the core's table (Edit and Cancel are the chat's own)."""


class Review:
    """Button presses and the review commands, mapped onto the core's command table."""

    def __init__(self, core: Core, chat: TelegramChat, access: Access, edits: EditReplies) -> None:
        self.core = core
        self.chat = chat
        self.access = access
        self.edits = edits

    async def mention(self, update: Update, args: list[str], rest: str) -> str:
        """/mention ID: bring a mention's alert, with its buttons, into this chat."""
        actor = await self.access.reader(update)
        if not args or not args[0].lstrip("#").isdigit():
            raise UserFacingError("give the mention's number, e.g. /mention 12")
        store = self.core.store
        assert update.effective_chat is not None
        # Moving the live alert here: an approver of its brand, in a chat that may see it.
        mention = await self.core.tenancy.decider(
            place_of(update.effective_chat), actor, int(args[0].lstrip("#")), "bring an alert here"
        )
        drafts = await store.drafts.current(mention.id)
        reply = await store.replies.for_mention(mention.id)
        html, keyboard = await self.chat.render(mention, drafts, reply)
        message = update.effective_message
        assert message is not None
        sent = await self.chat.answer(message, html, keyboard)
        # This copy is now the one kept up to date (the original may be in a digest, or old).
        await store.mentions.set_alert_ref(
            mention.id, "telegram", f"{sent.chat_id}:{sent.message_id}"
        )
        await self.core.auto_drafts.shown(mention.id)  # opened: write its owed draft
        return ""

    async def redraft(self, update: Update, args: list[str], rest: str) -> str:
        """/redraft ID <instruction>: new drafts following the user's words."""
        actor = await self.access.reader(update)
        if len(args) < 2 or not args[0].lstrip("#").isdigit():
            raise UserFacingError(
                "write /redraft ID and how, e.g. /redraft 12 mention the status page"
            )
        assert update.effective_chat is not None
        await self.core.tenancy.decider(
            place_of(update.effective_chat), actor, int(args[0].lstrip("#")), "redraft"
        )
        instruction = rest.partition(" ")[2].strip()[:MAX_INSTRUCTION_CHARS]
        order = Order(Verb.DRAFT, int(args[0].lstrip("#")), actor, text=instruction)
        return (await self.core.commands.run(order)).answer

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press: decode, re-check, act, and answer before any other request."""
        query = update.callback_query
        if query is None:
            return
        callback = decode(query.data)
        if callback is None:
            await query.answer(toast("This button is out of date; use /mention ID for a new one."))
            return
        try:
            actor = await self.chat.actor(query.from_user)
            if query.message is None:
                raise PermissionDenied("use the buttons under Parley's alerts in the team's chat")
            await self.core.tenancy.decider(
                place_of(query.message.chat), actor, callback.mention_id
            )
            answered = await self._act(callback, actor, query.answer)
        except UserFacingError as exc:
            await query.answer(toast(f"Sorry: {exc}."))
            return
        except Exception:
            log.exception("Telegram button %s failed", callback.action.value)
            await query.answer(toast("Sorry, that failed unexpectedly; the log has the details."))
            return
        if answered is not None:
            await query.answer(toast(answered))
        message = query.message
        if isinstance(message, Message):
            await self._after(callback, message, query.from_user)

    async def _act(
        self, cb: Callback, actor: Actor, answer: Callable[..., Awaitable[bool]]
    ) -> str | None:
        """Run the press; the toast to answer with (None: already answered)."""
        mid = cb.mention_id
        match cb.action:
            case Action.EDIT:
                await self.core.store.mentions.get(mid)  # NotFound for a forged id
                return "Reply to my message with your text."
            case Action.CANCEL_EDIT:
                return "Not approved; your text stays as the draft."
            case Action.TWEAK:
                assert cb.variant is not None
                if cb.variant > len(TWEAKS):
                    return "This button is out of date; use /mention ID for a new one."
                order = Order(Verb.DRAFT, mid, actor, text=TWEAKS[cb.variant - 1].key)
            case _:
                order = Order(_VERBS[cb.action], mid, actor, variant=cb.variant)
        answered = False

        async def early(text: str) -> None:
            nonlocal answered
            await answer(toast(text))  # drafting takes a while: the spinner stops now
            answered = True

        done = await self.core.commands.run(order, working=early)
        return None if answered else done.answer

    async def _after(self, cb: Callback, message: Message, user: User) -> None:
        """Follow-ups in the chat once the press was answered (the alert itself is updated
        from the core's MentionChanged event)."""
        if cb.action is Action.EDIT:
            await self.edits.ask(cb.mention_id, message, user)
        elif cb.action is Action.POST_ANYWAY:
            await self.edits.preview(cb.mention_id, message)
        elif cb.action is Action.CANCEL_EDIT or (
            cb.action is Action.APPROVE and cb.variant is not None
        ):
            done = (
                f"✅ Approved: your reply to #{cb.mention_id} is queued."
                if cb.action is Action.APPROVE
                else f"Not approved; your text stays as the draft of #{cb.mention_id}."
            )
            await self.chat.edit(message.chat_id, message.message_id, done, None)
