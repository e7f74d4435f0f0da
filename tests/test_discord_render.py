"""Discord alert and digest embeds: every limit kept and hostile text made inert."""

from __future__ import annotations

import re
from datetime import timedelta

import discord  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.models import Author, Reply, Triage, utcnow
from bot.domain.states import MentionState, ReplyState
from bot.frontends.discord.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL,
    FIELD_VALUE_LIMIT,
    URGENT,
    clean,
    dlen,
    embed_size,
    fit,
    fit_lines,
    pending_text,
    render_alert,
    render_digest,
)
from bot.presentation import alert_view
from tests.helpers import drafted_mention, drafts

HOSTILE = (
    "[a](https://a.example) @everyone @here <@&123> <@123456789012345678> "
    "<#123456789012345678> </ban:1> <t:1:R> "
    "**md** __u__ ||spoiler|| `code` [click](https://evil.example/x) > quote\n# Heading\n"
)


def reply(state: ReplyState, **changes: object) -> Reply:
    now = utcnow()
    return Reply(
        id=1,
        mention_id=12,
        text="Thanks!",
        publisher="log",
        idempotency_key="k",
        state=state,
        approved_by="discord:ann",
        created_at=now - timedelta(minutes=2),
        updated_at=now,
        **changes,
    )


def texts_of(embed_dict: dict[str, object]) -> list[str]:
    out = [str(embed_dict.get(k, "")) for k in ("title", "description")]
    out += [str(embed_dict.get("author", {}).get("name", ""))]  # type: ignore[attr-defined]
    for field in embed_dict.get("fields", []):  # type: ignore[attr-defined]
        out += [field["name"], field["value"]]
    return out


def test_a_huge_hostile_mention_fits_every_limit_and_pings_no_one() -> None:
    m = drafted_mention(
        (HOSTILE * 400)[:20_000],
        title="**Title** @everyone " * 30,
        author=Author(handle="@here", display_name="<@&123> " * 60, reach=None),
        url="https://example.com/" + "a" * 3000,
        canonical_url=None,
        triage=Triage(
            relevant=False,
            sentiment="negative",
            urgency="high",
            needs_reply=True,
            reason=HOSTILE * 5,
            by="rules",
        ),
        intent="crisis_legal",
        urgent=True,
        duplicates=3,
    )
    ds = drafts(*(HOSTILE * 60 + str(i) for i in range(5)), selected=3)
    for d in ds:
        d.__dict__["flags"] = ("promises a refund " * 20,)
    dead = reply(ReplyState.DEAD, error=HOSTILE * 50)
    embed = render_alert(
        alert_view(m, ds, dead, "Acme **Cloud**"), reply=dead, decision="approved by x"
    )

    assert embed_size(embed) <= EMBED_TOTAL
    assert len(embed) <= EMBED_TOTAL  # discord.py's own count agrees
    assert embed.title is not None and len(embed.title) <= 256
    assert embed.description is not None and dlen(embed.description) <= DESCRIPTION_LIMIT
    assert embed.author.name is not None and len(embed.author.name) <= 256
    assert len(embed.fields) <= 25
    for field in embed.fields:
        assert field.name and len(field.name) <= 256
        assert field.value and dlen(field.value) <= FIELD_VALUE_LIMIT
    assert embed.url is None  # a 3000-character link is not used as the title link
    assert embed.colour is not None and embed.colour.value == URGENT
    names = [f.name for f in embed.fields]
    assert "✓ Draft 3 (selected)" in names and "Check first" in names
    # The selected draft is what Approve posts: it gets the most room of all drafts.
    values = {f.name: f.value or "" for f in embed.fields}
    assert dlen(values["✓ Draft 3 (selected)"]) > FIELD_VALUE_LIMIT - 20
    assert dlen(values["✓ Draft 3 (selected)"]) >= max(dlen(values["Draft 1"]), 1)
    for text in texts_of(embed.to_dict()):  # type: ignore[arg-type]
        assert "@everyone" not in text and "@here" not in text
        assert "<@" not in text and "<#" not in text and "</" not in text and "<t:" not in text
        assert "**md**" not in text and "||spoiler||" not in text
        assert re.search(r"\]\(", text) is None  # no live masked link
    assert "\\*\\*md\\*\\*" in (embed.description or "")
    assert (embed.description or "").endswith("…")


def test_an_ordinary_alert_shows_every_fact() -> None:
    m = drafted_mention(
        triage=Triage(
            relevant=True,
            sentiment="negative",
            urgency="normal",
            needs_reply=True,
            by="rules",
        ),
        intent="question",
        duplicates=1,
    )
    ds = drafts("Hi Ann, we are on it.", "Sorry about that!", selected=2)
    embed = render_alert(alert_view(m, ds, None, "Acme Cloud"))
    fields = {f.name: f.value for f in embed.fields}

    assert embed.title == "Mention #12 · Acme Cloud"
    assert embed.url == "https://reddit.com/r/acme/1"
    assert embed.colour is not None and embed.colour.value == 0xFF4500
    assert embed.author.name == "Ann (@ann) · 3.4k followers"
    assert embed.description == "Is acme cloud down?"
    assert fields["Source"] == "reddit · reddit-acme"
    assert fields["Rule"] == "outage · +1 copy"
    assert fields["Triage"] == "question · negative · urgency normal · reply needed (rules)"
    assert fields["Link"] == "https://reddit.com/r/acme/1"
    assert fields["Draft 1"] == "Hi Ann, we are on it."
    assert fields["✓ Draft 2 (selected)"] == "Sorry about that!"
    assert fields["Status"] == "**drafted**"
    assert embed.footer.text == "Parley · /mention 12"


def test_the_status_says_who_decided_and_where_the_reply_is() -> None:
    m = drafted_mention(state=MentionState.POSTED)
    sent = reply(ReplyState.SENT, posted_url="https://reddit.com/r/acme/1/reply")
    embed = render_alert(alert_view(m, [], sent, "Acme"), reply=sent, decision="approved by ann")
    status = embed.fields[-1].value or ""
    assert status.startswith("**posted** · approved by ann")
    assert "✅ **Posted** · [see the reply](https://reddit.com/r/acme/1/reply)" in status

    dead = reply(ReplyState.DEAD, error="403 Forbidden: **banned**")
    embed = render_alert(alert_view(drafted_mention(), [], dead, "Acme"), reply=dead)
    status = embed.fields[-1].value or ""
    assert "❌ **Could not post:** 403 Forbidden: \\*\\*banned\\*\\*" in status
    assert "**Retry**" in status


def test_the_digest_lists_mentions_within_limits_urgent_flagged() -> None:
    views = [
        alert_view(drafted_mention(HOSTILE * 50, id=i, urgent=i == 3), [], None, "Acme")
        for i in range(1, 11)
    ]
    embed = render_digest(views)
    assert embed.title == "🚨 10 more mentions"
    assert embed.colour is not None and embed.colour.value == URGENT
    lines = (embed.description or "").split("\n")
    assert len(lines) == 10 and lines[2].startswith("🚨 **#3**")
    assert all("@everyone" not in line and "<@" not in line for line in lines)
    assert embed_size(embed) <= EMBED_TOTAL

    many = render_digest(
        [alert_view(drafted_mention("x" * 500, id=i), [], None, "A") for i in range(1, 200)]
    )
    assert dlen(many.description or "") <= DESCRIPTION_LIMIT
    assert (many.description or "").split("\n")[-1].startswith("… and ")
    assert many.title == "199 more mentions"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=600), st.integers(min_value=1, max_value=300))
def test_fit_never_exceeds_its_limit(text: str, limit: int) -> None:
    out = fit(text, limit)
    assert dlen(out) <= limit
    if dlen(clean(text)) <= limit:
        assert out == clean(text)


def test_plain_answers_stay_within_a_message() -> None:
    text = fit_lines([f"line {i} " + "x" * 80 for i in range(100)])
    assert dlen(text) <= CONTENT_LIMIT and text.endswith("more")
    many = [drafted_mention(HOSTILE, id=i) for i in range(1, 40)]
    answer = pending_text(many, 39)
    assert dlen(answer) <= CONTENT_LIMIT
    assert answer.startswith("**39 waiting for a decision**")
    assert "@everyone" not in answer
