"""The review commands, written once: one table that every frontend maps its buttons and typed
commands onto (Telegram's callback codes, Discord's component ids, the console's words).

Each :class:`ReviewCommand` says what the command is called, who may run it (approvers of the
mention's brand; the phrase names the action in the refusal), what follows the mention id when
it is typed, whether it may take long (a model writes drafts: a chat answers first, within
Telegram's and Discord's deadlines), the :class:`~bot.services.review.ReviewService` call, and
the short answer a chat shows once it is done. :class:`ReviewCommands` runs them. Frontends keep
only their rendering and platform plumbing (deferring, modals, the 64 bytes of a callback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from bot.domain.models import Actor, Draft, Mention, Reply
from bot.drafting.tweaks import TWEAKS
from bot.services.inflight import InFlight
from bot.services.review import ReviewService


class Verb(StrEnum):
    """A review command, by the word the console types."""

    DRAFT = "draft"
    """Write new drafts (with an instruction or a tweak's key: redraft)."""
    USE = "use"
    """Choose which draft variant approval posts."""
    APPROVE = "approve"
    EDIT = "edit"
    POST_ANYWAY = "edit!"
    """Keep a text the checks held back (the reply's own text, or the one held last)."""
    REJECT = "reject"
    IGNORE = "ignore"
    RETRY = "retry"
    CONFIRM = "confirm"
    """A reply to post by hand was posted."""


class Takes(Enum):
    """What follows the mention id when a command is typed."""

    NOTHING = "nothing"
    VARIANT = "a variant number"
    MAYBE_VARIANT = "an optional variant number"
    TEXT = "a text"
    MAYBE_TEXT = "an optional text"


@dataclass(frozen=True)
class Order:
    """One command for one mention, by one person."""

    verb: Verb
    mention_id: int
    actor: Actor
    variant: int | None = None
    text: str | None = None
    """The reply text, a reason, a link or a drafting instruction (see the command)."""


@dataclass(frozen=True)
class Outcome:
    """What a command did: the answer a chat shows, and what it made."""

    order: Order
    answer: str
    reply: Reply | None = None
    draft: Draft | None = None
    drafts: list[Draft] = field(default_factory=list)


Made = Reply | Draft | Mention | list[Draft]
Run = Callable[[ReviewService, Order], Awaitable[Made]]


@dataclass(frozen=True)
class ReviewCommand:
    """One row of the table (see the module docstring)."""

    verb: Verb
    may: str
    """What only approvers may do: 'only approvers can {may}'."""
    takes: Takes
    run: Run
    answer: Callable[[Order], str]
    slow: bool = False
    """A model may take a while: a chat answers :func:`working_text` first."""


def redraft_label(order: Order) -> str:
    """How new drafts were asked for, in words: a tweak's label, or 'your instruction'."""
    return next((t.label.lower() for t in TWEAKS if t.key == order.text), "your instruction")


def working_text(order: Order) -> str:
    """What a chat answers at once to a slow command (drafting, redrafting)."""
    return f"Redrafting: {redraft_label(order)}…" if order.text else "Drafting…"


def _redrafted(order: Order) -> str:
    done = "Redrafted" if order.text else "Drafted"
    return f"{done} #{order.mention_id}: the alert shows the new drafts."


async def _post_anyway(review: ReviewService, o: Order) -> Draft:
    if o.text:
        return await review.edit(o.mention_id, o.text, o.actor, confirm=True)
    return await review.confirm_edit(o.mention_id, o.actor)


def _variant(order: Order) -> int:
    if order.variant is None:
        raise ValueError(f"{order.verb} needs a variant")
    return order.variant


COMMANDS: dict[Verb, ReviewCommand] = {
    c.verb: c
    for c in (
        ReviewCommand(
            Verb.DRAFT,
            "draft replies",
            Takes.MAYBE_TEXT,
            lambda r, o: r.draft(o.mention_id, o.actor, instruction=o.text or None),
            _redrafted,
            slow=True,
        ),
        ReviewCommand(
            Verb.USE,
            "choose a variant",
            Takes.VARIANT,
            lambda r, o: r.select(o.mention_id, _variant(o), o.actor),
            lambda o: f"Draft {o.variant} selected.",
        ),
        ReviewCommand(
            Verb.APPROVE,
            "approve replies",
            Takes.MAYBE_VARIANT,
            lambda r, o: r.approve(o.mention_id, o.actor, variant=o.variant),
            lambda o: "Approved: the reply is queued for posting.",
        ),
        ReviewCommand(
            Verb.EDIT,
            "edit replies",
            Takes.TEXT,
            lambda r, o: r.edit(o.mention_id, o.text or "", o.actor),
            lambda o: f"Saved as the reply to #{o.mention_id}.",
        ),
        ReviewCommand(
            Verb.POST_ANYWAY,
            "confirm an edit",
            Takes.MAYBE_TEXT,
            _post_anyway,
            lambda o: "Kept as you wrote it; the team log records it.",
        ),
        ReviewCommand(
            Verb.REJECT,
            "reject mentions",
            Takes.MAYBE_TEXT,
            lambda r, o: r.reject(o.mention_id, o.actor, o.text or None),
            lambda o: "Rejected.",
        ),
        ReviewCommand(
            Verb.IGNORE,
            "ignore mentions",
            Takes.MAYBE_TEXT,
            lambda r, o: r.ignore(o.mention_id, o.actor, o.text or None),
            lambda o: "Ignored.",
        ),
        ReviewCommand(
            Verb.RETRY,
            "retry replies",
            Takes.NOTHING,
            lambda r, o: r.retry(o.mention_id, o.actor),
            lambda o: "Queued again.",
        ),
        ReviewCommand(
            Verb.CONFIRM,
            "confirm replies",
            Takes.MAYBE_TEXT,
            lambda r, o: r.confirm_posted(o.mention_id, o.actor, o.text or None),
            lambda o: "Marked as posted. Thanks!",
        ),
    )
}
"""Every review command, in the order the help lists them."""


class ReviewCommands:
    """Runs the table's commands: the permission check, the early answer of a slow one, the
    service call and the answer."""

    def __init__(self, review: ReviewService) -> None:
        self.review = review
        self.in_flight = InFlight()
        """Commands being run now (``Core.settle`` waits for them)."""

    async def run(
        self, order: Order, *, working: Callable[[str], Awaitable[None]] | None = None
    ) -> Outcome:
        """Run one command. A slow one is checked first (who, and the mention's state), then
        ``working`` is awaited with the early answer, then it runs; errors are raised
        (UserFacingError and its kin carry their text)."""
        command = COMMANDS[order.verb]
        async with self.in_flight:
            await self.review.require_approver(order.actor, order.mention_id, command.may)
            if command.slow and working is not None:
                await self.review.check_draftable(order.mention_id)
                await working(working_text(order))
            made = await command.run(self.review, order)
        return Outcome(
            order,
            command.answer(order),
            reply=made if isinstance(made, Reply) else None,
            draft=made if isinstance(made, Draft) else None,
            drafts=made if isinstance(made, list) else [],
        )
