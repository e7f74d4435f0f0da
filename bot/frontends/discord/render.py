"""Discord embeds for alerts and digests, and plain-text answers for slash commands.

Untrusted text (mention text, title, author, link, drafts, errors, names) goes through
:func:`clean` wherever Discord renders markdown: markdown is escaped
(``discord.utils.escape_markdown``), ``@everyone``/``@here``/user and role mentions are broken
(``escape_mentions``), and ``<@…>``, ``<#…>``, ``</…>``, ``<t:…>`` and custom-emoji forms are
defused with a zero-width space, as is every masked link's ``](``. Messages are also sent with
``AllowedMentions.none()``, so even a missed form could not ping anyone. Embed author and
footer texts are not markdown: they are only defused and trimmed. Sizes are measured in UTF-16
code units (never less than Discord's count), and an alert's parts share Discord's
6000-character embed budget by priority: the selected draft in full, then the mention text,
then the other variants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import discord
from discord.utils import escape_markdown, escape_mentions

from bot.connectors.catalog import accent_colour
from bot.domain.models import Mention, Reply
from bot.domain.states import ReplyState
from bot.presentation import AlertView, Decision, longest_fitting, truncate
from bot.services.watch import WatchRule

EMBED_TOTAL = 6000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_VALUE_LIMIT = 1024
AUTHOR_LIMIT = 256
CONTENT_LIMIT = 2000
"""A message's ``content``."""
URL_LIMIT = 2048
LINK_URL_LIMIT = 512
"""A link shown in a status line (and a link button's limit)."""

BRAND = 0x5865F2
"""Parley's own colour (digests, platforms without a colour of their own)."""
URGENT = 0xED4245

# Parts of an alert and the share of the embed each may take (the rest goes to the text and
# the drafts). Floors are what the mention text and other variants keep when space is short.
_SMALL = 150
_TRIAGE = 250
_LINK = 300
_WARNINGS = 600
_STATUS = 1000
_TEXT_FLOOR = 1000
_VARIANT_FLOOR = 150

_TRIGGER = re.compile(r"<(?=[@#/:]|a:|t:)")
_MASKED_LINK = re.compile(r"\](?=\()")
_ZWSP = "\u200b"


def dlen(text: str) -> int:
    """Length as Discord may count it at most (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def clean(text: str) -> str:
    """Untrusted text made inert for Discord markdown: escaped, mentions and triggers broken.

    A masked link's ``](`` is broken first: ``escape_markdown`` escapes only the first masked
    link of a line, and its greedy pattern then shields the rest of the line from escaping.
    """
    return defuse(escape_markdown(_MASKED_LINK.sub("]" + _ZWSP, text)))


def defuse(text: str) -> str:
    """Mentions and ``<…>`` triggers broken, for plain-text places (author, thread names)."""
    return _TRIGGER.sub("<" + _ZWSP, escape_mentions(text))


def fit(text: str, limit: int) -> str:
    """:func:`clean` text trimmed (raw, before escaping) so the result is at most ``limit``."""
    out = clean(text)
    if dlen(out) <= limit:
        return out
    n = longest_fitting(lambda n: dlen(clean(truncate(text, n))) <= limit, len(text))
    return clean(truncate(text, n or 0)) if n is not None else ""


def plain(text: str, limit: int = CONTENT_LIMIT) -> str:
    """Text trimmed to a limit in Discord's units (for content that is already safe)."""
    if dlen(text) <= limit:
        return text
    n = longest_fitting(lambda n: dlen(truncate(text, n)) <= limit, len(text)) or 0
    return truncate(text, n)


def fit_lines(lines: Sequence[str], limit: int = CONTENT_LIMIT) -> str:
    """Join already-safe lines, dropping whole lines at the end to stay within ``limit``."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        line = plain(line, limit - 40)
        size = dlen(line) + 1
        if used + size > limit - 40:
            out.append(f"… and {len(lines) - i} more")
            break
        out.append(line)
        used += size
    return "\n".join(out)


def http_url(url: str | None, limit: int = URL_LIMIT) -> str | None:
    """The URL if Discord would accept it as an embed or link target (http(s), no spaces)."""
    if not url or len(url) > limit or not url.startswith(("https://", "http://")):
        return None
    if any(c.isspace() or c in "<>()" for c in url):
        return None
    return url


def platform_colour(platform: str) -> discord.Colour:
    """The colour of a platform's alerts (its spec's, else Parley's own)."""
    colour = accent_colour(platform.lower())
    return discord.Colour(BRAND if colour is None else colour)


def timestamp(at: datetime) -> str:
    """A Discord timestamp: every reader sees it in their own time zone (so PARLEY_TIMEZONE,
    which a team spread over zones would read wrong, is not used here)."""
    return f"<t:{int(at.timestamp())}:f>"


def decision_line(decision: Decision) -> str:
    """'approved by discord:ann on <time>' (with the reason, if one was given)."""
    line = f"{decision.action} by {fit(decision.actor, 100)} {timestamp(decision.at)}"
    return line + (f" ({fit(decision.detail, 200)})" if decision.detail else "")


def reply_line(reply: Reply | None, post_link: str | None) -> str | None:
    """Where the reply stands: where to post it by hand (``post_link``), the link to it once
    posted, or the error."""
    if reply is None:
        return None
    match reply.state:
        case ReplyState.SENT:
            url = http_url(reply.posted_url, LINK_URL_LIMIT)
            by = f" by hand by {plain(reply.posted_by_hand, 100)}" if reply.posted_by_hand else ""
            return f"✅ **Posted**{by}" + (f" · [see the reply]({url})" if url else "")
        case ReplyState.AWAITING_MANUAL:
            url = http_url(post_link, LINK_URL_LIMIT)
            where = f" under [the post]({url})" if url else ""
            return f"✍️ **Post the approved text by hand**{where}, then press **Posted it**."
        case ReplyState.DEAD:
            error = fit(reply.error or "unknown error", 300)
            return f"❌ **Could not post:** {error}. Fix the cause, then press **Retry**."
        case ReplyState.QUEUED if reply.error:
            return f"⏳ Retrying after an error: {fit(reply.error, 300)}"
        case _:
            return f"⏳ Reply {reply.state.value}…"


def embed_size(embed: discord.Embed) -> int:
    """What counts against the 6000 limit: title, description, fields, footer, author."""
    parts = [embed.title or "", embed.description or "", embed.footer.text or ""]
    parts.append(embed.author.name or "")
    for field in embed.fields:
        parts += [field.name or "", field.value or ""]
    return sum(dlen(p) for p in parts)


def _split(budget: int, needs: list[int], floors: list[int]) -> list[int]:
    """Share ``budget`` among parts: each gets its floor (or its need, if smaller), then what
    is left goes to the parts in order, up to their need."""
    given = [min(n, f) for n, f in zip(needs, floors, strict=True)]
    left = budget - sum(given)
    for i, need in enumerate(needs):
        extra = max(0, min(need - given[i], left))
        given[i] += extra
        left -= extra
    return given


def render_alert(
    view: AlertView, *, reply: Reply | None = None, decision: str | None = None
) -> discord.Embed:
    """An alert as one embed within every Discord limit (asserted)."""
    title = f"Mention #{view.mention_id} · {view.brand}"
    if view.urgent:
        title = "🚨 URGENT · " + title
    embed = discord.Embed(
        title=fit(title, TITLE_LIMIT),
        url=http_url(view.link),
        colour=discord.Colour(URGENT) if view.urgent else platform_colour(view.platform),
    )
    embed.set_author(name=plain(defuse(f"{view.author} · {view.reach}"), AUTHOR_LIMIT))
    embed.set_footer(text=f"Parley · /mention {view.mention_id}")
    embed.add_field(name="Source", value=fit(f"{view.platform} · {view.source}", _SMALL))
    rule = view.rule + (f" · intent {view.intent}" if view.intent and not view.triage else "")
    if view.duplicates:
        rule += f" · +{view.duplicates} cop{'y' if view.duplicates == 1 else 'ies'}"
    embed.add_field(name="Rule", value=fit(rule, _SMALL))
    if view.triage:
        embed.add_field(name="Triage", value=fit(view.triage, _TRIAGE), inline=False)
    if view.warnings:
        lines = [f"⚠️ {clean(w)}" for w in view.warnings]
        embed.add_field(name="Check first", value=fit_lines(lines, _WARNINGS), inline=False)
    if view.link:
        embed.add_field(name="Link", value=fit(view.link, _LINK), inline=False)
    status = f"**{view.state}**" + (f" · {decision}" if decision else "")
    extra = reply_line(reply, view.link)
    if view.draft_note:
        status += f"\n*{fit(view.draft_note, _WARNINGS)}*"
    status = plain(status + (f"\n{extra}" if extra else ""), _STATUS)

    # The text and the drafts share what the other parts leave, the selected draft first
    # (it is what Approve posts), then the text, then the other variants.
    chosen = next((v for v, text in view.variants if text == view.draft), None)
    drafts = dict(view.variants)
    heading = ""
    if view.title and view.title not in view.text:
        heading = f"**{fit(view.title, TITLE_LIMIT)}**\n"
    slots: list[tuple[int | None, int, int]] = []  # (variant, or None for the text; need; floor)
    if chosen is not None:
        slots.append(
            (chosen, min(dlen(clean(drafts[chosen])), FIELD_VALUE_LIMIT), FIELD_VALUE_LIMIT)
        )
    text_need = min(dlen(heading) + dlen(clean(view.text)), DESCRIPTION_LIMIT)
    slots.append((None, text_need, _TEXT_FLOOR))
    slots += [
        (v, min(dlen(clean(text)), FIELD_VALUE_LIMIT), _VARIANT_FLOOR)
        for v, text in view.variants
        if v != chosen
    ]
    names = {
        v: f"✓ Draft {v} (selected)" if v == chosen else f"Draft {v}" for v, _ in view.variants
    }
    fixed = embed_size(embed) + dlen("Status") + dlen(status) + sum(map(dlen, names.values()))
    shares = _split(EMBED_TOTAL - fixed, [s[1] for s in slots], [s[2] for s in slots])
    share = dict(zip((s[0] for s in slots), shares, strict=True))

    embed.description = heading + fit(view.text, max(0, share[None] - dlen(heading)))
    for variant, text in view.variants:
        embed.add_field(name=names[variant], value=fit(text, share[variant]) or "…", inline=False)
    embed.add_field(name="Status", value=status, inline=False)
    assert embed_size(embed) <= EMBED_TOTAL, embed_size(embed)
    return embed


def digest_line(view: AlertView) -> str:
    """One mention of a digest: flag, id, brand, platform, author and the start of the text."""
    flag = "🚨 " if view.urgent else ""
    return (
        f"{flag}**#{view.mention_id}** {fit(view.brand, 40)} · {fit(view.platform, 20)} · "
        f"{fit(view.author, 40)}: {fit(' '.join(view.text.split()), 140)}"
    )


def render_digest(views: Sequence[AlertView]) -> discord.Embed:
    """Several mentions in one embed (sent when a channel's rate is used up)."""
    urgent = any(v.urgent for v in views)
    embed = discord.Embed(
        title=f"{'🚨 ' if urgent else ''}{len(views)} more mentions",
        description=fit_lines([digest_line(v) for v in views], DESCRIPTION_LIMIT),
        colour=discord.Colour(URGENT if urgent else BRAND),
    )
    embed.set_footer(text="Open one with /mention ID")
    assert embed_size(embed) <= EMBED_TOTAL
    return embed


def error_text(message: str) -> str:
    """A user-facing error as an ephemeral answer."""
    return plain(f"Sorry: {clean(message)}.")


def pending_text(mentions: Sequence[Mention], total: int) -> str:
    """``/pending``: mentions waiting for a decision, one line each."""
    if not mentions:
        return "Nothing is waiting for a decision. 🎉"
    lines = [f"**{total} waiting for a decision** (open one with `/mention`):"]
    for m in mentions:
        who = m.author.handle or m.author.display_name or "?"
        lines.append(
            f"{'🚨 ' if m.urgent else ''}**#{m.id}** {m.state.value} · {fit(m.platform, 20)} · "
            f"{fit(who, 30)}: {fit(' '.join(m.text.split()), 90)}"
        )
    return fit_lines(lines)


def queue_text(replies: Sequence[Reply]) -> str:
    """``/queue``: replies not yet posted."""
    if not replies:
        return "The outbox is empty."
    return fit_lines(
        [
            f"**#{r.mention_id}** {r.state.value} via {fit(r.publisher, 40)}, {r.attempts} tries"
            + (f" — {fit(r.error, 200)}" if r.error else "")
            for r in replies
        ]
    )


def sources_text(lines: Sequence[str]) -> str:
    """``/sources``: one health line per source (errors quote platforms: untrusted)."""
    return fit_lines([fit(line, 600) for line in lines]) if lines else "No sources configured."


def watch_text(rules: Sequence[WatchRule]) -> str:
    """``/watch list``: the rules in matching order."""
    if not rules:
        return "No watch rules."
    return fit_lines([rule_line(r) for r in rules])


def rule_line(rule: WatchRule) -> str:
    """One watch rule: brand/name, where it comes from, and its query as code."""
    query = plain(rule.query.replace("`", "'"), 300)
    origin = "parley.toml" if rule.origin == "config" else f"chat, by {rule.added_by or '?'}"
    return (
        f"{'🚨 ' if rule.urgent else ''}**{fit(rule.brand, 64)}/{fit(rule.name, 64)}** "
        f"({fit(origin, 80)}): `{query}`"
    )
