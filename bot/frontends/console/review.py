"""The console's review commands (approve, edit, reject, …), onto the core's command table.

The words are the core's verbs (bot/services/review_commands.py); what each takes after the
mention's number (a variant, maybe a variant, or text) comes from that table too.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.app import Core
from bot.domain.models import Actor
from bot.errors import UserFacingError
from bot.services.review import NeedsConfirmation
from bot.services.review_commands import COMMANDS, Order, Outcome, Takes, Verb


def _silent(done: Outcome) -> list[str]:
    return []  # the change's own line says what happened


_DONE: dict[Verb, Callable[[Outcome], list[str]]] = {
    Verb.APPROVE: lambda done: [
        f"Queued reply for #{done.order.mention_id} via "
        f"{done.reply.publisher if done.reply else '?'}."
    ],
    Verb.EDIT: lambda done: [f"Type 'approve {done.order.mention_id}' to post your text."],
    Verb.POST_ANYWAY: lambda done: [
        f"Kept as you wrote it (recorded). Type 'approve {done.order.mention_id}' to post it."
    ],
    Verb.RETRY: lambda done: [f"Reply for #{done.order.mention_id} queued again."],
}
"""What the console prints after a review command (the others print the change's line)."""


def split_id(arg: str) -> tuple[int, str]:
    """The mention's number at the start of ``arg``, and the rest of it."""
    head, _, rest = arg.partition(" ")
    try:
        return int(head.lstrip("#")), rest.strip()
    except ValueError:
        raise UserFacingError("give the mention's number, e.g. 'show 12'") from None


async def review(core: Core, verb: Verb, arg: str, actor: Actor) -> list[str]:
    """A review command of the core's table (bot/services/review_commands.py)."""
    mention_id, rest = split_id(arg)
    takes = COMMANDS[verb].takes
    variant: int | None = None
    if takes in (Takes.VARIANT, Takes.MAYBE_VARIANT):
        if takes is Takes.VARIANT and not rest.isdigit():
            raise UserFacingError(f"say which variant, e.g. '{verb} 12 2'")
        if rest and not rest.isdigit():
            raise UserFacingError(f"{verb} takes an optional variant number, e.g. '{verb} 12 2'")
        variant, rest = (int(rest) if rest else None), ""
    order = Order(verb, mention_id, actor, variant=variant, text=rest or None)
    try:
        done = await core.commands.run(order)
    except NeedsConfirmation as held:
        return [
            f"⚠ Your reply to #{mention_id} was held: {'; '.join(held.reasons)}.",
            f"   To post it anyway, type: edit! {mention_id}   (or send a corrected text)",
        ]
    return _DONE.get(verb, _silent)(done)
