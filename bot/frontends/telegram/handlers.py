"""Telegram updates into core calls: slash commands, button presses and the Edit reply.

One error boundary per handler: a UserFacingError's text is shown, anything else is logged
with its traceback and answered with a generic apology (never ``str(exc)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from telegram import Chat, ForceReply, LinkPreviewOptions, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.domain.models import Actor
from bot.domain.states import MentionState, ReplyState
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS, TWEAKS
from bot.errors import ConfigError, InvalidTransition, PermissionDenied, UserFacingError
from bot.frontends.telegram.keyboards import (
    Action,
    Callback,
    decode,
    held_keyboard,
    preview_keyboard,
)
from bot.frontends.telegram.render import esc, fit_lines, safe, tg_len, toast
from bot.services.charts import chart_png
from bot.services.health import health_lines
from bot.services.review import NeedsConfirmation
from bot.services.stats import compute_stats, parse_period, stats_lines
from bot.services.tenancy import SOURCES, Place, Scope

if TYPE_CHECKING:
    from bot.frontends.telegram.frontend import TelegramFrontend

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
Command = Callable[["Handlers", Update, list[str], str], Awaitable[str]]

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

_EDIT_TTL = 3600.0
_CAPTION_LIMIT = 1024
"""sendPhoto caption limit (text after entity parsing)."""
_MAX_PENDING_EDITS = 500
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_TOASTS = {
    Action.APPROVE: "Approved: the reply is queued for posting.",
    Action.REJECT: "Rejected.",
    Action.IGNORE: "Ignored.",
    Action.RETRY: "Queued again.",
    Action.CONFIRM: "Marked as posted. Thanks!",
}


@dataclass(frozen=True)
class PendingEdit:
    """An Edit press waiting for the editor's reply to the ForceReply prompt."""

    user_id: int
    mention_id: int
    at: float


class Handlers:
    """Every update handler of the frontend."""

    def __init__(self, frontend: TelegramFrontend) -> None:
        self.frontend = frontend
        self.core = frontend.core
        self.pending_edits: dict[tuple[int, int], PendingEdit] = {}
        """(chat id, ForceReply prompt message id) → who may answer it, for which mention."""

    def register(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Add the handlers to the Application."""
        for name, command in self._commands.items():
            app.add_handler(CommandHandler(name, self._command(command)))
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_handler(
            MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, self.on_reply)
        )

    # ---- commands -----------------------------------------------------------------------

    def _command(self, command: Command) -> Callable[[Update, Any], Coroutine[Any, Any, None]]:
        async def handle(update: Update, context: Context) -> None:
            message = update.effective_message
            if message is None or update.effective_user is None:
                return
            text = message.text or ""
            rest = text.partition(" ")[2].strip()
            try:
                answer = await command(self, update, rest.split(), rest)
            except UserFacingError as exc:
                answer = f"Sorry: {esc(str(exc))}."
            except Exception:
                log.exception("Telegram command failed: %s", text.split(" ")[0][:40])
                answer = "Sorry, that failed unexpectedly; the log has the details."
            if answer:
                await self.frontend._call(
                    lambda: message.reply_text(
                        answer, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW
                    )
                )

        return handle

    async def _reader(self, update: Update) -> Actor:
        """The actor, if they may read here (see bot/services/tenancy.py)."""
        return (await self._seen(update))[0]

    async def _seen(self, update: Update) -> tuple[Actor, Scope]:
        """The actor and the brands this chat shows them: a brand's chat sees its brands, the
        default chat every brand, any other chat only what the actor approves."""
        assert update.effective_user is not None and update.effective_chat is not None
        actor = await self.frontend.actor(update.effective_user)
        return actor, self.core.tenancy.scope(place_of(update.effective_chat), actor)

    async def _start(self, update: Update, args: list[str], rest: str) -> str:
        assert update.effective_user is not None and update.effective_chat is not None
        message = update.effective_message
        topic = message.message_thread_id if message and message.is_topic_message else None
        ids = (
            f"Your user id: <code>{update.effective_user.id}</code>\n"
            f"This chat's id: <code>{update.effective_chat.id}</code>"
            + (f"\nThis topic's id: <code>{topic}</code>" if topic else "")
        )
        return f"{HELP}\n\n{ids}"

    async def _help(self, update: Update, args: list[str], rest: str) -> str:
        return HELP

    async def _pending(self, update: Update, args: list[str], rest: str) -> str:
        _, scope = await self._seen(update)
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

    async def _sources(self, update: Update, args: list[str], rest: str) -> str:
        _, scope = await self._seen(update)
        self.core.tenancy.require_team(scope, SOURCES)
        names = [r.source.name for r in self.core.runners]
        lines = await health_lines(self.core.store, names)
        return fit_lines([safe(line, 600) for line in lines] or ["No sources configured."])

    async def _queue(self, update: Update, args: list[str], rest: str) -> str:
        _, scope = await self._seen(update)
        states = [
            ReplyState.QUEUED,
            ReplyState.SENDING,
            ReplyState.FAILED,
            ReplyState.AWAITING_MANUAL,
            ReplyState.DEAD,
        ]
        replies = await self.core.store.replies.in_states(states, limit=50, brands=scope)
        if not replies:
            return "The outbox is empty."
        return fit_lines(
            [
                f"<b>#{r.mention_id}</b> {esc(r.state.value)} via {esc(r.publisher)}, "
                f"{r.attempts} tries" + (f" — {safe(r.error, 200)}" if r.error else "")
                for r in replies
            ]
        )

    async def _mention(self, update: Update, args: list[str], rest: str) -> str:
        actor = await self._reader(update)
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
        html, keyboard = await self.frontend.render(mention, drafts, reply)
        message = update.effective_message
        assert message is not None
        sent = await self.frontend._call(
            lambda: message.reply_text(
                html,
                parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
                reply_markup=keyboard,
            )
        )
        # This copy is now the one kept up to date (the original may be in a digest, or old).
        await store.mentions.set_alert_ref(
            mention.id, "telegram", f"{sent.chat_id}:{sent.message_id}"
        )
        await self.core.auto_drafts.shown(mention.id)  # opened: write its owed draft
        return ""

    async def _stats(self, update: Update, args: list[str], rest: str) -> str:
        _, scope = await self._seen(update)
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
            await self.frontend._call(
                lambda: message.reply_photo(png, caption=caption, parse_mode=ParseMode.HTML)
            )
        except TelegramError as exc:
            log.warning("could not send the stats chart: %s", exc)
            return text
        return "" if fits else text

    async def _watch(self, update: Update, args: list[str], rest: str) -> str:
        actor, scope = await self._seen(update)
        sub = args[0].lower() if args else "list"
        watch = self.core.watch
        tenancy = self.core.tenancy
        if sub == "list":
            brand = tenancy.brand(scope, args[1] if len(args) > 1 else None)
            rules = [r for r in await watch.rules(brand) if tenancy.sees(scope, r.brand)]
            if not rules:
                return "No watch rules."
            return fit_lines(
                [
                    f"{'🚨 ' if r.urgent else ''}<b>{safe(r.brand, 64)}/{safe(r.name, 64)}</b>"
                    f" ({r.origin}): <code>{esc(r.query)}</code>"
                    for r in rules
                ]
            )
        if sub == "add":
            words = rest.split(None, 1)[1] if len(args) > 1 else ""
            urgent = words.startswith("--urgent")
            words = words.removeprefix("--urgent").strip()
            parts = words.split(None, 2)
            if len(parts) < 3:
                raise UserFacingError(
                    "use /watch add [--urgent] <brand> <name> <query>, "
                    "e.g. /watch add acme pricing acme (price OR pricing)"
                )
            tenancy.brand(scope, parts[0])
            rule = await watch.add(parts[0], parts[1], parts[2], actor, urgent=urgent)
            return (
                f"Added {'urgent ' if rule.urgent else ''}rule <b>{safe(rule.brand, 64)}/"
                f"{safe(rule.name, 64)}</b>: <code>{esc(rule.query)}</code>"
            )
        if sub == "remove":
            if len(args) != 3:
                raise UserFacingError("use /watch remove <brand> <name>")
            tenancy.brand(scope, args[1])
            rule = await watch.remove(args[1], args[2], actor)
            return f"Removed rule <b>{safe(rule.brand, 64)}/{safe(rule.name, 64)}</b>."
        raise UserFacingError("use /watch list, /watch add … or /watch remove …")

    async def _redraft(self, update: Update, args: list[str], rest: str) -> str:
        actor = await self._reader(update)
        if len(args) < 2 or not args[0].lstrip("#").isdigit():
            raise UserFacingError(
                "write /redraft ID and how, e.g. /redraft 12 mention the status page"
            )
        assert update.effective_chat is not None
        await self.core.tenancy.decider(
            place_of(update.effective_chat), actor, int(args[0].lstrip("#")), "redraft"
        )
        instruction = rest.partition(" ")[2].strip()[:MAX_INSTRUCTION_CHARS]
        drafts = await self.core.review.draft(
            int(args[0].lstrip("#")), actor, instruction=instruction
        )
        return f"Redrafted #{drafts[0].mention_id}: the alert shows the new drafts."

    async def _reload(self, update: Update, args: list[str], rest: str) -> str:
        actor = await self._reader(update)
        try:
            await self.core.reload_prompts(actor)
        except ConfigError as exc:
            problems = "\n".join(esc(p) for p in exc.problems)
            return f"Sorry: {problems}\nThe previous prompts stay in use."
        return "Prompts and templates reloaded."

    async def _pause(self, update: Update, args: list[str], rest: str) -> str:
        actor = await self._reader(update)
        await self.core.alerts.pause(actor)
        return "⏸ Alerts paused. Mentions are still collected; /resume shows them."

    async def _resume(self, update: Update, args: list[str], rest: str) -> str:
        actor = await self._reader(update)
        count = await self.core.alerts.resume(actor)
        return f"▶️ Alerts resumed; {count} held mention{'s' if count != 1 else ''} on the way."

    _commands: ClassVar[dict[str, Command]] = {
        "start": _start,
        "help": _help,
        "pending": _pending,
        "queue": _queue,
        "sources": _sources,
        "mention": _mention,
        "stats": _stats,
        "watch": _watch,
        "redraft": _redraft,
        "reload": _reload,
        "pause": _pause,
        "resume": _resume,
    }

    # ---- buttons ------------------------------------------------------------------------

    async def on_callback(self, update: Update, context: Context) -> None:
        """A button press: decode, re-check, act, and answer before any other request."""
        query = update.callback_query
        if query is None:
            return
        callback = decode(query.data)
        if callback is None:
            await query.answer(toast("This button is out of date; use /mention ID for a new one."))
            return
        try:
            actor = await self.frontend.actor(query.from_user)
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
        review = self.core.review
        mid = cb.mention_id
        match cb.action:
            case Action.APPROVE:
                await review.approve(mid, actor, variant=cb.variant)
            case Action.REJECT:
                await review.reject(mid, actor)
            case Action.IGNORE:
                await review.ignore(mid, actor)
            case Action.RETRY:
                await review.retry(mid, actor)
            case Action.CONFIRM:
                await review.confirm_posted(mid, actor)
            case Action.SELECT:
                assert cb.variant is not None
                await review.select(mid, cb.variant, actor)
                return f"Draft {cb.variant} selected."
            case Action.TWEAK:
                assert cb.variant is not None
                if cb.variant > len(TWEAKS):
                    return "This button is out of date; use /mention ID for a new one."
                await answer(toast(f"Redrafting: {TWEAKS[cb.variant - 1].label.lower()}…"))
                await review.draft(mid, actor, instruction=TWEAKS[cb.variant - 1].key)
                return None
            case Action.DRAFT:
                mention = await self.core.store.mentions.get(mid)
                if mention.state not in (
                    MentionState.NEW,
                    MentionState.BACKLOG,
                    MentionState.ALERTED,
                    MentionState.DRAFTED,
                ):
                    raise InvalidTransition(
                        f"mention #{mid} is {mention.state}; it cannot be drafted"
                    )
                # Drafting can take a while (an LLM): answer first so the spinner stops.
                await answer(toast("Drafting…"))
                await review.draft(mid, actor)
                return None
            case Action.EDIT:
                await self.core.store.mentions.get(mid)  # NotFound for a forged id
                return "Reply to my message with your text."
            case Action.CANCEL_EDIT:
                return "Not approved; your text stays as the draft."
            case Action.POST_ANYWAY:
                await review.confirm_edit(mid, actor)
                return "Kept as you wrote it; the team log records it."
        return _TOASTS[cb.action]

    async def _after(self, cb: Callback, message: Message, user: User) -> None:
        """Follow-ups in the chat once the press was answered (the alert itself is updated
        from the core's MentionChanged event)."""
        if cb.action is Action.EDIT:
            await self._ask_for_text(cb.mention_id, message, user)
        elif cb.action is Action.POST_ANYWAY:
            await self._preview(cb.mention_id, message)
        elif cb.action is Action.CANCEL_EDIT or (
            cb.action is Action.APPROVE and cb.variant is not None
        ):
            done = (
                f"✅ Approved: your reply to #{cb.mention_id} is queued."
                if cb.action is Action.APPROVE
                else f"Not approved; your text stays as the draft of #{cb.mention_id}."
            )
            await self.frontend.edit(message.chat_id, message.message_id, done, None)

    async def _ask_for_text(self, mention_id: int, alert: Message, user: User) -> None:
        """Send a ForceReply prompt aimed at the editor (``selective`` + a mention of them)."""
        who = f'<a href="tg://user?id={user.id}">{safe(user.first_name, 64)}</a>'
        prompt = await self.frontend._call(
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

    # ---- the Edit reply -----------------------------------------------------------------

    async def on_reply(self, update: Update, context: Context) -> None:
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
            actor = await self.frontend.actor(user)
            draft = await self.core.review.edit(pending.mention_id, message.text or "", actor)
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
        await self.frontend._call(
            lambda: message.reply_text(
                answer,
                parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
                reply_markup=markup,
            )
        )

    async def _preview(self, mention_id: int, message: Message) -> None:
        """Turn the held-edit message into the preview of the kept text, with Approve."""
        draft = await self.core.store.drafts.selected(mention_id)
        if draft is None:
            return
        text = (
            f"Preview of your reply to <b>#{mention_id}</b> (kept despite the warnings):\n"
            f"<blockquote>{safe(draft.text)}</blockquote>"
        )
        markup = preview_keyboard(mention_id, draft.variant)
        await self.frontend.edit(message.chat_id, message.message_id, text, markup)

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


def place_of(chat: Chat) -> Place:
    """Where an update came from, for the tenancy rules: the chat's id and its @username."""
    names: tuple[int | str, ...] = (f"@{chat.username}",) if chat.username else ()
    return Place("telegram", (chat.id, *names))
