"""The two lifecycles of Parley, each one explicit state machine.

Mention:  new → alerted → drafted → approved → posted
          new → backlog (first poll of a new source: stored quietly)
          any open state → rejected | ignored
          approved → drafted (a dead reply sends the mention back for another try)

Reply:    queued → sending → sent
          sending → awaiting_manual → sent   (manual publisher: a CM confirms)
          sending → failed → queued          (retried with backoff)
          sending | failed → dead            (permanent error or too many tries)
          dead → queued                      (a CM presses Retry)
          sending → queued                   (crash recovery after reconciling)

``check_*`` raises :class:`InvalidTransition` for anything else.
"""

from __future__ import annotations

from enum import StrEnum

from bot.errors import InvalidTransition


class MentionState(StrEnum):
    NEW = "new"
    BACKLOG = "backlog"
    ALERTED = "alerted"
    DRAFTED = "drafted"
    APPROVED = "approved"
    POSTED = "posted"
    REJECTED = "rejected"
    IGNORED = "ignored"


class ReplyState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    AWAITING_MANUAL = "awaiting_manual"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"


UNPOSTED: tuple[ReplyState, ...] = (
    ReplyState.QUEUED,
    ReplyState.SENDING,
    ReplyState.FAILED,
    ReplyState.AWAITING_MANUAL,
    ReplyState.DEAD,
)
"""A reply's states before it is posted: the outbox's queue, as ``queue`` and stats list it."""

_M = MentionState
MENTION_TRANSITIONS: dict[MentionState, frozenset[MentionState]] = {
    _M.NEW: frozenset({_M.ALERTED, _M.BACKLOG, _M.DRAFTED, _M.REJECTED, _M.IGNORED}),
    _M.BACKLOG: frozenset({_M.ALERTED, _M.DRAFTED, _M.REJECTED, _M.IGNORED}),
    _M.ALERTED: frozenset({_M.DRAFTED, _M.REJECTED, _M.IGNORED}),
    _M.DRAFTED: frozenset({_M.DRAFTED, _M.APPROVED, _M.REJECTED, _M.IGNORED}),
    _M.APPROVED: frozenset({_M.POSTED, _M.DRAFTED}),
    _M.POSTED: frozenset(),
    _M.REJECTED: frozenset(),
    _M.IGNORED: frozenset(),
}

_R = ReplyState
REPLY_TRANSITIONS: dict[ReplyState, frozenset[ReplyState]] = {
    _R.QUEUED: frozenset({_R.SENDING, _R.DEAD}),
    _R.SENDING: frozenset({_R.SENT, _R.AWAITING_MANUAL, _R.FAILED, _R.DEAD, _R.QUEUED}),
    _R.AWAITING_MANUAL: frozenset({_R.SENT, _R.DEAD}),
    _R.FAILED: frozenset({_R.QUEUED, _R.DEAD}),
    _R.DEAD: frozenset({_R.QUEUED}),
    _R.SENT: frozenset(),
}


def check_mention(current: MentionState, target: MentionState) -> None:
    """Raise unless a mention may move from ``current`` to ``target``."""
    if target not in MENTION_TRANSITIONS[current]:
        raise InvalidTransition(f"a mention that is {current} cannot become {target}")


def check_reply(current: ReplyState, target: ReplyState) -> None:
    """Raise unless a reply may move from ``current`` to ``target``."""
    if target not in REPLY_TRANSITIONS[current]:
        raise InvalidTransition(f"a reply that is {current} cannot become {target}")
