"""The audit log: who changed what, when, from which state to which, with the text before and
after. ``AuditLog.record`` is the one writer every repository uses, inside the transaction of
the change it records, so a change never lands without its audit row (or the reverse)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.domain.models import Actor, AuditEntry, utcnow
from bot.storage.db import Database
from bot.storage.sql import iso


class AuditLog:
    """Writes and reads the ``audit_log`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        conn: aiosqlite.Connection,
        *,
        actor: Actor,
        entity: str,
        entity_id: int,
        action: str,
        from_state: str | None = None,
        to_state: str | None = None,
        before_text: str | None = None,
        after_text: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Add one audit row inside the caller's transaction ``conn``."""
        await conn.execute(
            "INSERT INTO audit_log (at, actor, entity, entity_id, action, from_state, to_state,"
            " before_text, after_text, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                iso(utcnow()),
                actor.label,
                entity,
                entity_id,
                action,
                from_state,
                to_state,
                before_text,
                after_text,
                detail,
            ),
        )

    async def note(
        self,
        actor: Actor,
        entity: str,
        entity_id: int,
        action: str,
        detail: str | None = None,
        *,
        after_text: str | None = None,
    ) -> None:
        """Record a decision that changes no state (e.g. a refused attempt, or a held edit
        with its ``after_text``)."""
        async with self.db.transaction() as conn:
            await self.record(
                conn,
                actor=actor,
                entity=entity,
                entity_id=entity_id,
                action=action,
                detail=detail,
                after_text=after_text,
            )

    async def trail(self, entity: str, entity_id: int) -> list[AuditEntry]:
        """Every audited change of one mention or reply, oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM audit_log WHERE entity = ? AND entity_id = ? ORDER BY id",
            (entity, entity_id),
        )
        return [
            AuditEntry(
                id=r["id"],
                at=datetime.fromisoformat(r["at"]),
                actor=r["actor"],
                entity=r["entity"],
                entity_id=r["entity_id"],
                action=r["action"],
                from_state=r["from_state"],
                to_state=r["to_state"],
                before_text=r["before_text"],
                after_text=r["after_text"],
                detail=r["detail"],
            )
            for r in rows
        ]
