"""The state machines: every allowed transition passes, every other one raises.

The expected answers are written out here as literal tables, independent of the implementation's
own ``MENTION_TRANSITIONS``/``REPLY_TRANSITIONS``, so a change to either is caught.
"""

from __future__ import annotations

import itertools

import pytest

from bot.domain.states import MentionState, ReplyState, check_mention, check_reply
from bot.errors import InvalidTransition

ALLOWED_MENTION_MOVES = {
    ("new", "alerted"),
    ("new", "backlog"),
    ("new", "drafted"),
    ("new", "rejected"),
    ("new", "ignored"),
    ("backlog", "alerted"),
    ("backlog", "drafted"),
    ("backlog", "rejected"),
    ("backlog", "ignored"),
    ("alerted", "drafted"),
    ("alerted", "rejected"),
    ("alerted", "ignored"),
    ("drafted", "drafted"),
    ("drafted", "approved"),
    ("drafted", "rejected"),
    ("drafted", "ignored"),
    ("approved", "posted"),
    ("approved", "drafted"),
}
"""Every (from, to) a mention may take; posted, rejected and ignored are final."""

ALLOWED_REPLY_MOVES = {
    ("queued", "sending"),
    ("queued", "dead"),
    ("sending", "sent"),
    ("sending", "awaiting_manual"),
    ("sending", "failed"),
    ("sending", "dead"),
    ("sending", "queued"),
    ("awaiting_manual", "sent"),
    ("awaiting_manual", "dead"),
    ("failed", "queued"),
    ("failed", "dead"),
    ("dead", "queued"),
}
"""Every (from, to) a reply may take; sent is final."""


@pytest.mark.parametrize("current,target", list(itertools.product(MentionState, MentionState)))
def test_mention_transitions(current: MentionState, target: MentionState) -> None:
    if (current.value, target.value) in ALLOWED_MENTION_MOVES:
        check_mention(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"{current}.*{target}"):
            check_mention(current, target)


@pytest.mark.parametrize("current,target", list(itertools.product(ReplyState, ReplyState)))
def test_reply_transitions(current: ReplyState, target: ReplyState) -> None:
    if (current.value, target.value) in ALLOWED_REPLY_MOVES:
        check_reply(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"{current}.*{target}"):
            check_reply(current, target)


def test_the_tables_name_only_real_states() -> None:
    mention_states = {s.value for s in MentionState}
    reply_states = {s.value for s in ReplyState}
    assert {s for move in ALLOWED_MENTION_MOVES for s in move} == mention_states
    assert {s for move in ALLOWED_REPLY_MOVES for s in move} == reply_states
