"""Pausing and resuming alerts, and the queue of mentions awaiting a decision.

While alerts are paused, sources keep polling and the pipeline keeps storing mentions, but they
are not shown (nor drafted): they stay ``new`` in the database. ``resume`` alerts every ``new``
mention through the normal alert path, urgent first. The switch is persisted, so a restart while
paused stays paused and nothing held is lost; claiming a mention for its alert is a conditional
state change, so nothing is alerted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from bot.domain.models import Actor, Mention
from bot.domain.states import MentionState
from bot.errors import PermissionDenied
from bot.pipeline.ingest import Alerter
from bot.services.permissions import ApproverPolicy
from bot.storage.controls import PAUSED_KEY
from bot.storage.store import Store

log = logging.getLogger(__name__)

PENDING_STATES = (MentionState.ALERTED, MentionState.DRAFTED)
"""Shown to the team and not yet decided (approved, rejected or ignored)."""

_HELD = (MentionState.NEW,)


class AlertControl:
    """The team's pause switch for alerts; every frontend calls the same methods."""

    def __init__(self, store: Store, alerter: Alerter, policy: ApproverPolicy) -> None:
        self.store = store
        self.controls = store.controls
        self.alerter = alerter
        self.policy = policy

    async def load(self) -> None:
        """Restore the persisted switch (call before sources start)."""
        self.alerter.paused = await self.controls.flag(PAUSED_KEY)
        if self.alerter.paused:
            log.warning("alerts are paused (type 'resume' in chat to show them again)")

    @property
    def paused(self) -> bool:
        """Whether new mentions are being held instead of alerted."""
        return self.alerter.paused

    def _require_approver(self, actor: Actor, action: str) -> None:
        if not self.policy.is_approver(actor):
            raise PermissionDenied(f"only approvers can {action} alerts; ask a team lead")

    async def pause(self, actor: Actor) -> None:
        """Hold new alerts until ``resume``; pausing twice changes nothing."""
        self._require_approver(actor, "pause")
        if self.alerter.paused:
            return
        # Persist first: if the write fails, alerts keep flowing rather than silently stopping.
        await self.controls.set_flag(PAUSED_KEY, True, actor, "pause")
        self.alerter.paused = True
        log.info("alerts paused by %s", actor.label)

    async def resume(self, actor: Actor) -> int:
        """Alert every held mention (urgent first, then oldest) and return how many.

        Also alerts ``new`` mentions left over by a crash between storing and alerting. The
        switch is persisted as running only after the held mentions were alerted, so a crash
        half-way leaves Parley paused with the rest still held, rather than losing them.
        """
        self._require_approver(actor, "resume")
        was_paused = self.alerter.paused
        self.alerter.paused = False  # from here on, polls alert their own mentions
        held = await self.store.mentions.ids_in(_HELD)
        alerted = await self.alerter.alert_stored(held)
        if was_paused or alerted:
            await self.controls.set_flag(
                PAUSED_KEY, False, actor, "resume", detail=f"{len(alerted)} held mentions alerted"
            )
        log.info("alerts resumed by %s: %d held mentions alerted", actor.label, len(alerted))
        return len(alerted)

    async def held(self) -> int:
        """How many stored mentions wait for ``resume``."""
        return await self.store.mentions.count_in(_HELD)

    async def pending(
        self,
        *,
        brand: str | None = None,
        limit: int = 50,
        brands: Collection[str] | None = None,
    ) -> list[Mention]:
        """Alerted or drafted mentions awaiting a decision (of ``brand``, and among ``brands``
        when given: a chat's tenancy scope): urgent first, then oldest first."""
        ids = await self.store.mentions.ids_in(
            PENDING_STATES, brand=brand, limit=limit, brands=brands
        )
        return [await self.store.mentions.get(i) for i in ids]

    async def pending_count(
        self, *, brand: str | None = None, brands: Collection[str] | None = None
    ) -> int:
        """How many mentions :meth:`pending` would list without a limit."""
        return await self.store.mentions.count_in(PENDING_STATES, brand=brand, brands=brands)
