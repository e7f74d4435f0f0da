"""The state machines: every allowed transition passes, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from bot.domain.states import (
    MENTION_TRANSITIONS,
    REPLY_TRANSITIONS,
    MentionState,
    ReplyState,
    check_mention,
    check_reply,
)
from bot.errors import InvalidTransition


@pytest.mark.parametrize("current,target", list(itertools.product(MentionState, MentionState)))
def test_mention_transitions(current: MentionState, target: MentionState) -> None:
    if target in MENTION_TRANSITIONS[current]:
        check_mention(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"{current}.*{target}"):
            check_mention(current, target)


@pytest.mark.parametrize("current,target", list(itertools.product(ReplyState, ReplyState)))
def test_reply_transitions(current: ReplyState, target: ReplyState) -> None:
    if target in REPLY_TRANSITIONS[current]:
        check_reply(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_reply(current, target)


def test_terminal_states_have_no_exit() -> None:
    for state in (MentionState.POSTED, MentionState.REJECTED, MentionState.IGNORED):
        assert MENTION_TRANSITIONS[state] == frozenset()
    assert REPLY_TRANSITIONS[ReplyState.SENT] == frozenset()


def test_every_state_is_reachable_from_new() -> None:
    reached = {MentionState.NEW}
    frontier = [MentionState.NEW]
    while frontier:
        for nxt in MENTION_TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(MentionState)
