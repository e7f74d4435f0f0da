"""Announcing that a mention changed, written once: its current state, drafts and reply are read
from the store and published as :class:`~bot.events.MentionChanged`, which every chat frontend
turns into an edit of the mention's alert.

Review decisions, the outbox, automatic drafts, the background triage and the pipeline's
copies all announce their changes through one :class:`Changes`.
"""

from __future__ import annotations

from collections.abc import Collection

from bot.domain.models import Actor, Mention
from bot.domain.states import MentionState
from bot.events import EventBus, MentionChanged
from bot.storage.store import Store


class Changes:
    """Publishes a mention's change, as the store has it now, on the event bus."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def publish(
        self,
        mention_id: int,
        actor: Actor,
        action: str,
        *,
        unless: Collection[MentionState] = (),
    ) -> Mention:
        """Announce the mention's change (``action`` by ``actor``); nothing is announced while
        it is in one of the states ``unless`` (it has no alert to edit). Returns the mention."""
        mention = await self.store.mentions.get(mention_id)
        if mention.state in unless:
            return mention
        drafts = await self.store.drafts.current(mention_id)
        reply = await self.store.replies.for_mention(mention_id)
        self.bus.publish(MentionChanged(mention, drafts, reply, actor, action))
        return mention
