"""Inline keyboards and the ``callback_data`` codec.

A button carries only ``p1:<action>:<mention_id>[:<variant>]`` (≤ 64 bytes, version-tagged);
everything else lives in SQLite. Data coming back is never trusted: it is parsed strictly
here, and the handler re-checks the presser and the mention's state through ReviewService.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain.models import Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.drafting.tweaks import TWEAKS

VERSION = "p1"
MAX_CALLBACK_BYTES = 64
"""Telegram's limit on ``callback_data``."""


class Action(StrEnum):
    """What a button does; the value is the short code in ``callback_data``."""

    DRAFT = "dr"
    APPROVE = "ap"
    EDIT = "ed"
    REJECT = "rj"
    IGNORE = "ig"
    SELECT = "se"
    RETRY = "rt"
    CONFIRM = "ok"
    CANCEL_EDIT = "cx"
    TWEAK = "tw"
    """Redraft with one of ``bot.drafting.tweaks.TWEAKS``; the variant field is its 1-based
    index."""
    POST_ANYWAY = "pa"
    """Keep the presser's own text that the checks held back (ReviewService.confirm_edit)."""


_PATTERN = re.compile(
    rf"^{VERSION}:(?P<action>{'|'.join(a.value for a in Action)}):(?P<id>[1-9][0-9]{{0,11}})"
    r"(?::(?P<variant>[1-9][0-9]{0,2}))?$"
)
_VARIANT_ACTIONS = frozenset({Action.SELECT, Action.APPROVE, Action.TWEAK})


@dataclass(frozen=True)
class Callback:
    """A decoded button press."""

    action: Action
    mention_id: int
    variant: int | None = None


def encode(action: Action, mention_id: int, variant: int | None = None) -> str:
    """The ``callback_data`` for a button (asserts the 64-byte limit)."""
    data = f"{VERSION}:{action.value}:{mention_id}" + (f":{variant}" if variant else "")
    if len(data.encode()) > MAX_CALLBACK_BYTES:  # pragma: no cover - ids are ≤ 12 digits
        raise ValueError("callback_data longer than 64 bytes")
    return data


def decode(data: str | None) -> Callback | None:
    """Parse ``callback_data``; None for anything this version did not produce."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    match = _PATTERN.match(data)
    if match is None:
        return None
    action = Action(match["action"])
    variant = int(match["variant"]) if match["variant"] else None
    if (action in (Action.SELECT, Action.TWEAK) and variant is None) or (
        variant is not None and action not in _VARIANT_ACTIONS
    ):
        return None
    return Callback(action, int(match["id"]), variant)


def _button(
    label: str, action: Action, mention_id: int, variant: int | None = None
) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(action, mention_id, variant))


def alert_keyboard(
    mention: Mention, drafts: list[Draft], reply: Reply | None
) -> InlineKeyboardMarkup | None:
    """The buttons an alert offers in the mention's current state (None: no buttons)."""
    mid = mention.id
    if reply is not None and reply.state is ReplyState.DEAD:
        return InlineKeyboardMarkup(
            [[_button("🔁 Retry", Action.RETRY, mid), _button("✏️ Edit", Action.EDIT, mid)]]
        )
    if reply is not None and reply.state is ReplyState.AWAITING_MANUAL:
        return InlineKeyboardMarkup([[_button("✅ Posted it", Action.CONFIRM, mid)]])
    if mention.state is MentionState.DRAFTED:
        selected = next((d for d in drafts if d.selected), None)
        # Crisis/legal mentions need a person's own text: ReviewService refuses one-tap approval.
        one_tap = mention.intent != "crisis_legal" or (
            selected is not None and selected.origin.startswith("edit:")
        )
        first = [_button("✏️ Edit", Action.EDIT, mid), _button("🔄 Draft", Action.DRAFT, mid)]
        if one_tap:
            first.insert(0, _button("✅ Approve", Action.APPROVE, mid))
        rows = [
            first,
            [
                _button(tweak.label, Action.TWEAK, mid, number)
                for number, tweak in enumerate(TWEAKS, start=1)
            ],
            [_button("🚫 Reject", Action.REJECT, mid), _button("🙈 Ignore", Action.IGNORE, mid)],
        ]
        if len(drafts) > 1:
            rows.insert(
                0,
                [
                    _button(
                        f"{'✓ ' if d.selected else ''}Draft {d.variant}",
                        Action.SELECT,
                        mid,
                        d.variant,
                    )
                    for d in drafts[:8]  # Telegram shows at most 8 buttons per row
                ],
            )
        return InlineKeyboardMarkup(rows)
    if mention.state in (MentionState.NEW, MentionState.BACKLOG, MentionState.ALERTED):
        return InlineKeyboardMarkup(
            [
                [_button("📝 Draft", Action.DRAFT, mid), _button("✏️ Edit", Action.EDIT, mid)],
                [
                    _button("🚫 Reject", Action.REJECT, mid),
                    _button("🙈 Ignore", Action.IGNORE, mid),
                ],
            ]
        )
    return None


def preview_keyboard(mention_id: int, variant: int) -> InlineKeyboardMarkup:
    """Approve exactly the previewed variant, or leave it as a draft."""
    return InlineKeyboardMarkup(
        [
            [
                _button("✅ Approve", Action.APPROVE, mention_id, variant),
                _button("✖️ Cancel", Action.CANCEL_EDIT, mention_id),
            ]
        ]
    )


def held_keyboard(mention_id: int) -> InlineKeyboardMarkup:
    """Under a held edit: keep it anyway, a second confirmation that the audit records."""
    return InlineKeyboardMarkup([[_button("⚠️ Post anyway", Action.POST_ANYWAY, mention_id)]])
