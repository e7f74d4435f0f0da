"""Storage for the run-time controls chat commands change: watch rules added from chat and
on/off switches such as the alert pause.

Every change is audited (by the one audit log writer) in the same transaction as the change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.domain.models import Actor, utcnow
from bot.storage.audit import AuditLog
from bot.storage.db import Database

PAUSED_KEY = "alerts_paused"
"""control_state key of the alert pause ('1' paused, '0' running)."""

CONTROL_ENTITY_ID = 0
"""Audit rows about a global switch have no entity of their own; they use id 0."""


@dataclass(frozen=True)
class StoredRule:
    """A watch rule added from chat, as persisted."""

    id: int
    brand: str
    name: str
    query: str
    urgent: bool
    added_by: str
    created_at: datetime


class DuplicateRule(Exception):
    """A chat rule with this brand and name already exists (the UNIQUE index refused it)."""


def _rule(row: sqlite3.Row) -> StoredRule:
    return StoredRule(
        id=row["id"],
        brand=row["brand"],
        name=row["name"],
        query=row["query"],
        urgent=bool(row["urgent"]),
        added_by=row["added_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )


class ControlRepo:
    """Reads and audited writes of chat-added rules and control switches."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    # ---- watch rules --------------------------------------------------------------------

    async def rules(self) -> list[StoredRule]:
        """Every chat-added rule, in creation order."""
        rows = await self.db.fetchall("SELECT * FROM watch_rules ORDER BY id")
        return [_rule(r) for r in rows]

    async def add_rule(
        self, brand: str, name: str, query: str, urgent: bool, actor: Actor
    ) -> StoredRule:
        """Persist a new rule and its audit row; DuplicateRule if (brand, name) exists."""
        now = utcnow().isoformat()
        try:
            async with self.db.transaction() as conn:
                cursor = await conn.execute(
                    "INSERT INTO watch_rules (brand, name, query, urgent, added_by, created_at)"
                    " VALUES (?,?,?,?,?,?)",
                    (brand, name, query, int(urgent), actor.label, now),
                )
                rule_id = cursor.lastrowid
                assert rule_id is not None
                await self.audit.record(
                    conn,
                    actor=actor,
                    entity="rule",
                    entity_id=rule_id,
                    action="add",
                    after_text=query,
                    detail=f"{brand}/{name}" + (" urgent" if urgent else ""),
                )
        except sqlite3.IntegrityError:
            raise DuplicateRule(f"{brand}/{name}") from None
        return StoredRule(
            rule_id, brand, name, query, urgent, actor.label, datetime.fromisoformat(now)
        )

    async def remove_rule(self, brand: str, name: str, actor: Actor) -> StoredRule | None:
        """Delete a chat-added rule (audited); None if there is no such rule."""
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT * FROM watch_rules WHERE brand = ? AND name = ?", (brand, name)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            rule = _rule(row)
            await conn.execute("DELETE FROM watch_rules WHERE id = ?", (rule.id,))
            await self.audit.record(
                conn,
                actor=actor,
                entity="rule",
                entity_id=rule.id,
                action="remove",
                before_text=rule.query,
                detail=f"{brand}/{name}",
            )
        return rule

    # ---- control switches ---------------------------------------------------------------

    async def flag(self, key: str) -> bool:
        """A persisted on/off switch (off if never set)."""
        row = await self.db.fetchone("SELECT value FROM control_state WHERE key = ?", (key,))
        return row is not None and row[0] == "1"

    async def set_flag(
        self, key: str, value: bool, actor: Actor, action: str, detail: str | None = None
    ) -> None:
        """Set a switch and audit it (entity 'control', id 0) in one transaction."""
        now = utcnow().isoformat()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO control_state (key, value, updated_by, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                (key, "1" if value else "0", actor.label, now),
            )
            await self.audit.record(
                conn,
                actor=actor,
                entity="control",
                entity_id=CONTROL_ENTITY_ID,
                action=action,
                detail=detail,
            )
