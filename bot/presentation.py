"""What an alert says, independent of any chat: frontends only add markup and escaping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.connectors.catalog import platform_name
from bot.domain.models import Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def longest_fitting(ok: Callable[[int], bool], high: int) -> int | None:
    """The largest n in [0, high] with ok(n) (ok must be monotonic), or None if even 0 fails:
    how much of a text fits a platform's limit once marked up and escaped."""
    if not ok(0):
        return None
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


def format_reach(reach: int | None) -> str:
    """'12 followers', '3.4k followers', '1.2M followers' or 'reach unknown'."""
    if reach is None:
        return "reach unknown"
    if reach >= 1_000_000:
        return f"{reach / 1_000_000:.1f}M followers"
    if reach >= 1_000:
        return f"{reach / 1_000:.1f}k followers"
    return f"{reach} followers"


def author_label(mention: Mention) -> str:
    """The author as people know them: 'Display Name (@handle)' or just one of them."""
    author = mention.author
    handle = author.handle.lstrip("@")
    if author.display_name and handle and author.display_name != handle:
        return f"{author.display_name} (@{handle})"
    if handle:
        return f"@{handle}"
    return author.display_name or "unknown author"


def reply_status(reply: Reply | None, post_link: str | None = None) -> str | None:
    """One line on where the reply stands (``post_link``: where to answer by hand), or None
    before approval."""
    if reply is None:
        return None
    match reply.state:
        case ReplyState.SENT:
            where = f": {reply.posted_url}" if reply.posted_url else ""
            by = f" by hand by {reply.posted_by_hand}" if reply.posted_by_hand else ""
            return f"posted{by}{where}"
        case ReplyState.AWAITING_MANUAL:
            where = f" at {post_link}" if post_link else ""
            return f"ready to copy — post it by hand{where}, then confirm"
        case ReplyState.DEAD:
            return f"failed: {reply.error or 'unknown error'} (retry possible)"
        case ReplyState.QUEUED if reply.error:
            return f"retrying after error: {reply.error}"
        case _:
            return f"{reply.state.value} (approved by {reply.approved_by})"


@dataclass(frozen=True)
class Decision:
    """Who decided a mention's fate, when, and why (the reason, if one was given)."""

    action: str
    actor: str
    at: datetime
    detail: str | None = None


@dataclass(frozen=True)
class AlertView:
    """The facts an alert shows, in display order."""

    mention_id: int
    brand: str
    platform: str
    source: str
    author: str
    reach: str
    title: str | None
    text: str
    link: str | None
    rule: str
    urgent: bool
    intent: str | None
    duplicates: int
    state: str
    draft: str | None
    variants: tuple[tuple[int, str], ...]
    reply: str | None
    triage: str | None = None
    """One line, e.g. 'complaint · negative · urgency high · reply needed (rules)'."""
    sentiment: str | None = None
    urgency: str | None = None
    needs_reply: bool | None = None
    relevant: bool | None = None
    warnings: tuple[str, ...] = ()
    """What a CM must know before approving (crisis/legal, off-topic, draft checks)."""
    draft_note: str | None = None
    """Instead of drafts: 'drafting a reply…' while one is owed, or why none was offered."""


def alert_view(
    mention: Mention, drafts: list[Draft], reply: Reply | None, brand_label: str
) -> AlertView:
    """Build the view of one mention for any frontend."""
    selected = next((d for d in drafts if d.selected), drafts[0] if drafts else None)
    return AlertView(
        mention_id=mention.id,
        brand=brand_label,
        platform=mention.platform,
        source=mention.source,
        author=author_label(mention),
        reach=format_reach(mention.author.reach),
        title=mention.title,
        text=mention.text,
        link=mention.canonical_url or mention.url,
        rule=mention.rule,
        urgent=mention.urgent,
        intent=mention.intent,
        duplicates=mention.duplicates,
        state=mention.state.value,
        draft=selected.text if selected else None,
        variants=tuple((d.variant, d.text) for d in drafts),
        reply=reply_status(reply, mention.url or mention.canonical_url),
        triage=triage_line(mention),
        sentiment=mention.triage.sentiment if mention.triage else None,
        urgency=mention.triage.urgency if mention.triage else None,
        needs_reply=mention.triage.needs_reply if mention.triage else None,
        relevant=mention.triage.relevant if mention.triage else None,
        warnings=alert_warnings(mention, drafts, brand_label),
        draft_note=draft_note(mention, drafts),
    )


DRAFTING_NOTE = "✍️ drafting a reply…"


def draft_note(mention: Mention, drafts: list[Draft]) -> str | None:
    """What an undrafted alert says about its drafts: one is being written, or every one was
    refused (and why); None once there are drafts or when none is expected."""
    if drafts or mention.state is not MentionState.ALERTED:
        return None
    if mention.draft_refused:
        return f"🚫 {mention.draft_refused}"
    return DRAFTING_NOTE if mention.drafting else None


def intent_label(intent: str) -> str:
    """'crisis_legal' → 'crisis/legal', 'bug_report' → 'bug report'."""
    return "crisis/legal" if intent == "crisis_legal" else intent.replace("_", " ")


def triage_line(mention: Mention) -> str | None:
    """The triage of a mention in one line, or None before triage."""
    t = mention.triage
    if t is None:
        return None
    parts = [
        intent_label(mention.intent or "other"),
        t.sentiment,
        f"urgency {t.urgency}",
        "reply needed" if t.needs_reply else "no reply needed",
    ]
    return " · ".join(parts) + f" ({t.by})"


def alert_warnings(mention: Mention, drafts: list[Draft], brand_label: str) -> tuple[str, ...]:
    """Warnings shown above the drafts: answerable only by hand, crisis/legal, likely
    off-topic, each draft's flags."""
    warnings = []
    if not mention.answerable:
        warnings.append(
            f"reply by hand: {platform_name(mention.platform)} does not let Parley answer this "
            "post; Approve gives you the text to copy and the link to open"
        )
    if mention.intent == "crisis_legal":
        warnings.append("crisis/legal: no one-tap approval; a person must write or edit the reply")
    if mention.triage is not None and not mention.triage.relevant:
        why = f": {mention.triage.reason}" if mention.triage.reason else ""
        warnings.append(f"probably not about {brand_label}{why}")
    warnings += [f"Draft {d.variant} {flag}" for d in drafts for flag in d.flags]
    return tuple(warnings)
