"""Storage of what a chat frontend owes its chat after an outage, and where chats moved.

``alert_refresh``: alerts already posted whose mention changed while the chat could not be
reached (or while Parley was stopping); the frontend edits each to its current state at its
next connection, after a restart too. ``chat_migrations``: a Telegram group upgraded to a
supergroup gets a new id; the old id maps to the new one from then on.
"""

from __future__ import annotations

from bot.domain.models import utcnow
from bot.storage.db import Database


class AlertRefreshRepo:
    """The ``alert_refresh`` table: alert edits a frontend still owes."""

    def __init__(self, db: Database, frontend: str) -> None:
        self.db = db
        self.frontend = frontend

    async def mark(self, mention_id: int) -> None:
        """Remember that this mention's alert must be edited at the next connection."""
        await self.db.execute(
            "INSERT OR IGNORE INTO alert_refresh (frontend, mention_id, marked_at) VALUES (?,?,?)",
            (self.frontend, mention_id, utcnow().isoformat()),
        )

    async def owed(self) -> list[int]:
        """The mentions whose alerts wait for an edit, oldest mark first."""
        rows = await self.db.fetchall(
            "SELECT mention_id FROM alert_refresh WHERE frontend = ? ORDER BY marked_at",
            (self.frontend,),
        )
        return [int(r[0]) for r in rows]

    async def done(self, mention_id: int) -> None:
        """The alert was edited: forget the mark."""
        await self.db.execute(
            "DELETE FROM alert_refresh WHERE frontend = ? AND mention_id = ?",
            (self.frontend, mention_id),
        )


class ChatMigrationRepo:
    """The ``chat_migrations`` table: old chat id → new chat id, per frontend."""

    def __init__(self, db: Database, frontend: str) -> None:
        self.db = db
        self.frontend = frontend

    async def record(self, old_id: str, new_id: str) -> None:
        """The chat ``old_id`` is now ``new_id`` (chats that had moved to ``old_id`` follow)."""
        now = utcnow().isoformat()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE chat_migrations SET new_id = ? WHERE frontend = ? AND new_id = ?",
                (new_id, self.frontend, old_id),
            )
            await conn.execute(
                "INSERT INTO chat_migrations (frontend, old_id, new_id, migrated_at) "
                "VALUES (?,?,?,?) ON CONFLICT (frontend, old_id) DO UPDATE SET "
                "new_id = excluded.new_id, migrated_at = excluded.migrated_at",
                (self.frontend, old_id, new_id, now),
            )

    async def all(self) -> dict[str, str]:
        """Every old id and the id it moved to."""
        rows = await self.db.fetchall(
            "SELECT old_id, new_id FROM chat_migrations WHERE frontend = ?", (self.frontend,)
        )
        return {str(r[0]): str(r[1]) for r in rows}
