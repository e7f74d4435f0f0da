"""Telegram HTML for alerts, digests and command answers.

Every untrusted string (mention text, title, author, link, drafts, errors) goes through
:func:`esc`, which emits only the ``&lt; &gt; &amp; &quot;`` entities Telegram accepts, and
:func:`defuse`, so text can neither open markup nor become a tappable ``/command`` or an
``@mention`` that pings someone. Messages are kept within Telegram's 4096-character limit by
trimming the raw text before escaping and measuring the escaped whole.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from bot.domain.models import Reply
from bot.domain.states import ReplyState
from bot.localtime import stamp
from bot.presentation import AlertView, Decision, longest_fitting, truncate

MESSAGE_LIMIT = 4096
"""Telegram's limit on a message's text, in UTF-16 code units."""
TOAST_LIMIT = 200
"""answerCallbackQuery text limit."""
DRAFT_LIMIT = 800
TITLE_LIMIT = 200
FIELD_LIMIT = 120
LINK_LIMIT = 400

_TRIGGER = re.compile(r"(?<![\w/@])([/@])(?=\w)")
_WORD_JOINER = "\u2060"


def esc(text: str) -> str:
    """Escape text for Telegram HTML (``<``, ``>``, ``&`` and ``"`` only)."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def defuse(text: str) -> str:
    """Break ``/command`` and ``@user`` triggers with an invisible word joiner."""
    return _TRIGGER.sub(lambda m: m.group(1) + _WORD_JOINER, text)


def safe(text: str, limit: int | None = None) -> str:
    """Untrusted text, trimmed (raw, before escaping), defused and escaped."""
    return esc(defuse(truncate(text, limit) if limit is not None else text))


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def http_link(url: str | None, label: str) -> str | None:
    """An ``<a>`` for an http(s) URL (anything else is not linked), or None."""
    if not url or not url.startswith(("https://", "http://")) or len(url) > 2048:
        return None
    return f'<a href="{esc(url)}">{esc(label)}</a>'


def _reply_lines(reply: Reply | None, draft_limit: int, post_link: str | None) -> list[str]:
    if reply is None:
        return []
    match reply.state:
        case ReplyState.SENT:
            link = http_link(reply.posted_url, "see the reply")
            by = f" by hand by {safe(reply.posted_by_hand, 100)}" if reply.posted_by_hand else ""
            return [f"✅ <b>Posted</b>{by}" + (f" · {link}" if link else "")]
        case ReplyState.AWAITING_MANUAL:
            where = http_link(post_link, "the post")
            return [
                "✍️ <b>Post this by hand</b>"
                + (f" under {where}" if where else "")
                + ", then press “Posted it”:",
                f"<pre>{esc(truncate(reply.text, draft_limit))}</pre>",
            ]
        case ReplyState.DEAD:
            error = safe(reply.error or "unknown error", FIELD_LIMIT * 2)
            return [f"❌ <b>Could not post:</b> {error}. Fix the cause, then press Retry."]
        case ReplyState.QUEUED if reply.error:
            return [f"⏳ Retrying after an error: {safe(reply.error, FIELD_LIMIT * 2)}"]
        case _:
            return [f"⏳ Reply {reply.state.value}…"]


def _alert_html(
    view: AlertView,
    heading: str,
    decision: str | None,
    reply: Reply | None,
    text_limit: int,
    draft_limit: int,
) -> str:
    head = f"<b>{esc(heading)} #{view.mention_id}</b> · <b>{safe(view.brand, FIELD_LIMIT)}</b>"
    if view.urgent:
        head = "🚨 <b>URGENT</b> · " + head
    lines = [
        head,
        f"📡 {safe(view.platform, FIELD_LIMIT)} ({safe(view.source, FIELD_LIMIT)})",
        f"👤 {safe(view.author, FIELD_LIMIT)} · {esc(view.reach)}",
    ]
    tags = [f"rule <i>{safe(view.rule, FIELD_LIMIT)}</i>"]
    if view.intent:
        tags.append(f"intent <i>{safe(view.intent, FIELD_LIMIT)}</i>")
    if view.duplicates:
        tags.append(f"+{view.duplicates} cop{'y' if view.duplicates == 1 else 'ies'}")
    lines.append("🏷 " + " · ".join(tags))
    if view.triage:
        lines.append(f"🧭 {safe(view.triage, FIELD_LIMIT * 2)}")
    lines.extend(f"⚠️ {safe(w, FIELD_LIMIT * 2)}" for w in view.warnings)
    if view.title and view.title not in view.text:
        lines.append(f"<b>{safe(view.title, TITLE_LIMIT)}</b>")
    lines.append(f"<blockquote expandable>{safe(view.text, text_limit)}</blockquote>")
    if view.link:
        lines.append("🔗 " + safe(view.link, LINK_LIMIT))
    if view.variants:
        lines.append("")
        lines.append("<b>Drafts</b>" if len(view.variants) > 1 else "<b>Draft</b>")
        for variant, text in view.variants:
            mark = "✓" if text == view.draft else "·"
            lines.append(f"{mark} <b>{variant}.</b> {safe(text, draft_limit)}")
    if view.draft_note:
        lines.extend(["", f"<i>{safe(view.draft_note, FIELD_LIMIT * 4)}</i>"])
    lines.append("")
    status = f"<b>Status:</b> {esc(view.state)}"
    if decision:
        status += f" · {esc(decision)}"
    lines.append(status)
    lines.extend(_reply_lines(reply, draft_limit, view.link))
    return "\n".join(lines)


def render_alert(
    view: AlertView,
    *,
    reply: Reply | None = None,
    decision: str | None = None,
    heading: str = "Mention",
) -> str:
    """An alert as Telegram HTML, trimmed to fit one message.

    The raw mention text (then, if need be, the drafts) is cut to the longest length whose
    escaped message still fits; escaping can triple a text, so this is a binary search.
    """

    def build(text_limit: int, draft_limit: int) -> str:
        return _alert_html(view, heading, decision, reply, text_limit, draft_limit)

    def fits(out: str) -> bool:
        return tg_len(out) <= MESSAGE_LIMIT

    out = build(len(view.text), DRAFT_LIMIT)
    if fits(out):
        return out
    text_limit = longest_fitting(lambda n: fits(build(n, DRAFT_LIMIT)), len(view.text))
    if text_limit is not None:
        return build(text_limit, DRAFT_LIMIT)
    draft_limit = longest_fitting(lambda n: fits(build(0, n)), DRAFT_LIMIT) or 0
    return build(0, draft_limit)


def decision_line(decision: Decision) -> str:
    """'approved by telegram:Ann at 2026-11-25 15:02 CET' (PARLEY_TIMEZONE; with the reason)."""
    line = f"{decision.action} by {decision.actor} at {stamp(decision.at)}"
    return line + (f" ({decision.detail})" if decision.detail else "")


def render_digest(views: Sequence[AlertView]) -> str:
    """Several mentions in one message, one line each (sent when the chat's rate is used up)."""
    lines = [f"<b>{len(views)} more mentions</b> (open one with /mention ID):"]
    for view in views:
        flag = "🚨 " if view.urgent else ""
        lines.append(
            f"{flag}<b>#{view.mention_id}</b> {safe(view.brand, 40)} · {safe(view.platform, 20)}"
            f" · {safe(view.author, 40)}: {safe(' '.join(view.text.split()), 140)}"
        )
    return fit_lines(lines)


def fit_lines(lines: Sequence[str], limit: int = MESSAGE_LIMIT) -> str:
    """Join already-escaped lines, dropping whole lines at the end to stay within ``limit``."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        size = tg_len(line) + 1
        if used + size > limit - 40:
            out.append(f"… and {len(lines) - i} more lines")
            break
        out.append(line)
        used += size
    return "\n".join(out)


def toast(text: str) -> str:
    """A callback answer within Telegram's 200-character limit."""
    return truncate(text, TOAST_LIMIT)
