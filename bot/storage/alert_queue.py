"""Storage of the alerts waiting to be posted, one queue per chat frontend (``alert_queue``).

The alerter adds a mention for every running frontend; each frontend's alert-delivery service
counts and reads the oldest rows of a destination's brands, a few at a time, and removes a row
once its alert is posted or given up. Nothing here holds more than one batch in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.models import utcnow
from bot.storage.db import Database
from bot.storage.sql import marks


@dataclass(frozen=True)
class QueuedAlert:
    """A mention waiting for its alert on one frontend."""

    mention_id: int
    urgent: bool
    attempts: int


class AlertQueueRepo:
    """The ``alert_queue`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(
        self, frontends: Sequence[str], alerts: Sequence[tuple[int, str, bool]]
    ) -> None:
        """Queue (mention id, brand, urgent) for each frontend; a mention already queued there
        keeps its place."""
        now = utcnow().isoformat()
        await self.db.executemany(
            "INSERT OR IGNORE INTO alert_queue (frontend, mention_id, brand, urgent, queued_at)"
            " VALUES (?,?,?,?,?)",
            [(f, m, brand, int(urgent), now) for f in frontends for m, brand, urgent in alerts],
        )

    async def brands(self, frontend: str) -> list[str]:
        """The brands with alerts waiting for ``frontend`` (one index seek per brand, so it stays
        cheap however long the queue is)."""
        found: list[str] = []
        sql = "SELECT MIN(brand) FROM alert_queue WHERE frontend = ?"
        row = await self.db.fetchone(sql, (frontend,))
        while row is not None and row[0] is not None:
            found.append(str(row[0]))
            row = await self.db.fetchone(sql + " AND brand > ?", (frontend, found[-1]))
        return found

    async def counts(
        self, frontend: str, brands: Sequence[str], *, at_most: int
    ) -> tuple[int, int]:
        """(urgent, normal) alerts waiting for ``frontend`` among ``brands``, each counted up to
        ``at_most`` (enough to choose between one alert and a digest, without a full scan)."""
        counted = []
        for urgent in (1, 0):
            row = await self.db.fetchone(
                "SELECT COUNT(*) FROM (SELECT 1 FROM alert_queue WHERE frontend = ?"
                f" AND brand IN ({marks(brands)}) AND urgent = ? LIMIT ?)",
                (frontend, *brands, urgent, at_most),
            )
            counted.append(int(row[0]) if row else 0)
        return counted[0], counted[1]

    async def oldest(
        self, frontend: str, brands: Sequence[str], *, urgent: bool, limit: int
    ) -> list[QueuedAlert]:
        """The first ``limit`` alerts of one kind waiting for ``frontend`` among ``brands``."""
        rows = await self.db.fetchall(
            "SELECT mention_id, urgent, attempts FROM alert_queue WHERE frontend = ?"
            f" AND brand IN ({marks(brands)}) AND urgent = ? ORDER BY id LIMIT ?",
            (frontend, *brands, int(urgent), limit),
        )
        return [QueuedAlert(int(r[0]), bool(r[1]), int(r[2])) for r in rows]

    async def remove(self, frontend: str, mention_ids: Sequence[int]) -> None:
        """Forget alerts that were posted or given up."""
        await self.db.executemany(
            "DELETE FROM alert_queue WHERE frontend = ? AND mention_id = ?",
            [(frontend, m) for m in mention_ids],
        )

    async def remove_brands(self, frontend: str, brands: Sequence[str]) -> int:
        """Forget every alert of ``brands`` (they have nowhere to go); returns how many."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                f"DELETE FROM alert_queue WHERE frontend = ? AND brand IN ({marks(brands)})",
                (frontend, *brands),
            )
            return int(cursor.rowcount)

    async def failed(self, frontend: str, mention_ids: Sequence[int]) -> None:
        """Count one more failed attempt for each alert."""
        await self.db.executemany(
            "UPDATE alert_queue SET attempts = attempts + 1 WHERE frontend = ? AND mention_id = ?",
            [(frontend, m) for m in mention_ids],
        )

    async def total(self, frontend: str) -> int:
        """How many alerts wait for ``frontend``."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) FROM alert_queue WHERE frontend = ?", (frontend,)
        )
        return int(row[0]) if row else 0
