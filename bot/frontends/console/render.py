"""Plain-text lines for the console: alerts, changes to a mention, one-line summaries."""

from __future__ import annotations

from bot.domain.models import Mention
from bot.events import MentionChanged
from bot.presentation import AlertView, draft_note, triage_line, truncate

ALERT_TEXT_LIMIT = 600
"""Alert text is trimmed to this many characters; `show ID` prints it whole."""


def copies(count: int) -> str:
    """'+1 copy', '+3 copies'."""
    return f"+{count} cop{'y' if count == 1 else 'ies'}"


def render_alert(view: AlertView, *, heading: str = "New mention") -> list[str]:
    """An alert as plain text lines."""
    flags = " · URGENT" if view.urgent else ""
    lines = [
        f"── {heading} #{view.mention_id} · {view.brand} · {view.platform} "
        f"({view.source}){flags} · {view.state}",
        f"   From: {view.author} ({view.reach}) · rule: {view.rule}"
        + (f" · intent: {view.intent}" if view.intent else "")
        + (f" · {copies(view.duplicates)}" if view.duplicates else ""),
    ]
    if view.triage:
        lines.append(f"   Triage: {view.triage}")
    lines += [f"   ⚠ {warning}" for warning in view.warnings]
    if view.title and view.title not in view.text:
        lines.append(f"   Title: {truncate(view.title, 200)}")
    lines.append(f"   Text: {truncate(view.text, ALERT_TEXT_LIMIT)}")
    if view.link:
        lines.append(f"   Link: {view.link}")
    for variant, text in view.variants:
        marker = "*" if text == view.draft else " "
        lines.append(f"  {marker}Draft {variant}: {text}")
    if view.draft_note:
        lines.append(f"   {view.draft_note}")
    if view.reply:
        lines.append(f"   Reply: {view.reply}")
    return lines


def render_change(event: MentionChanged) -> list[str]:
    """The line (or lines) a change to a mention prints."""
    m = event.mention
    who = event.actor.label
    match event.action:
        case "duplicate":
            return [f"   #{m.id} seen again elsewhere ({copies(m.duplicates)})"]
        case "sent" | "reconciled" | "confirm":
            where = event.reply.posted_url if event.reply else None
            by = f" by hand by {who}" if event.action == "confirm" else ""
            return [f"✔ #{m.id} posted{by}" + (f": {where}" if where else "")]
        case "ready_to_copy":
            text = event.reply.text if event.reply else ""
            return [
                f"✎ #{m.id} is ready to post by hand at {m.url or 'the source'}:",
                f"   {text}",
                f"   then type: confirm {m.id} [link to your reply]",
            ]
        case "dead":
            error = event.reply.error if event.reply else "unknown error"
            return [f"✘ #{m.id} could not be posted: {error}. Type: retry {m.id}"]
        case "retry_scheduled":
            return [f"… #{m.id} failed, retrying later"]
        case "triaged":
            flag = "🚨 URGENT · " if m.urgent else ""
            return [f"{flag}#{m.id} triaged again: {triage_line(m)}"]
        case "drafted" if not event.drafts:
            note = draft_note(m, event.drafts)
            return [f"#{m.id}: {note or 'no draft was written'}"]
        case "draft" | "edit" | "select" | "drafted":
            drafts = [
                f"  {'*' if d.selected else ' '}Draft {d.variant}: {d.text}" for d in event.drafts
            ]
            done = "drafts ready" if event.action == "drafted" else f"{event.action} by {who}"
            return [f"#{m.id} {done}:", *drafts]
        case _:
            return [f"#{m.id} is now {m.state.value} ({event.action} by {who})"]


def summary(m: Mention) -> str:
    """A mention on one line, for lists."""
    flag = "!" if m.urgent else " "
    who = m.author.handle or m.author.display_name or "?"
    text = truncate(" ".join(m.text.split()), 70)
    return f"{flag}#{m.id:<4} {m.state.value:<9} {m.platform:<9} {who[:18]:<18} {text}"
