"""Aggregates for the stats and charts: mention counts, response times, posting costs and
volume per 15-minute slot, over a period and optionally one brand."""

from __future__ import annotations

from datetime import datetime

from bot.storage.db import Database
from bot.storage.sql import brand_filter


class StatsRepo:
    """Read-only aggregate queries over mentions and replies."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def count_by(
        self, column: str, since: datetime, brand: str | None = None
    ) -> dict[str, int]:
        """Mentions fetched since ``since`` grouped by a column (state, platform, brand, intent)."""
        if column not in {"state", "platform", "brand", "intent", "source"}:
            raise ValueError(column)
        sql = f"SELECT COALESCE({column}, '?'), COUNT(*) FROM mentions WHERE fetched_at >= ?"
        sql, params = brand_filter(sql, since, brand, "brand")
        rows = await self.db.fetchall(sql + f" GROUP BY {column}", params)
        return {str(r[0]): int(r[1]) for r in rows}

    async def response_seconds(self, since: datetime, brand: str | None = None) -> list[float]:
        """Seconds from fetch to reply sent, for replies sent since ``since``."""
        sql = (
            "SELECT m.fetched_at, r.updated_at FROM replies r"
            " JOIN mentions m ON m.id = r.mention_id WHERE r.state = 'sent' AND r.updated_at >= ?"
        )
        sql, params = brand_filter(sql, since, brand, "m.brand")
        rows = await self.db.fetchall(sql, params)
        return [
            (datetime.fromisoformat(r[1]) - datetime.fromisoformat(r[0])).total_seconds()
            for r in rows
        ]

    async def posting_costs(
        self, since: datetime, brand: str | None = None
    ) -> dict[str, tuple[int, float]]:
        """Replies sent since ``since`` that the platform charged for, per publisher:
        (replies, US dollars)."""
        sql = (
            "SELECT r.publisher, COUNT(*), SUM(r.cost_usd) FROM replies r"
            " JOIN mentions m ON m.id = r.mention_id"
            " WHERE r.state = 'sent' AND r.cost_usd IS NOT NULL AND r.updated_at >= ?"
        )
        sql, params = brand_filter(sql, since, brand, "m.brand")
        rows = await self.db.fetchall(sql + " GROUP BY r.publisher", params)
        return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}

    async def volume_slots(
        self, since: datetime, brand: str | None = None
    ) -> list[tuple[datetime, str | None, int]]:
        """Mentions fetched since ``since`` per 15-minute UTC slot and triage sentiment
        (None: not triaged): (slot start, sentiment, count), oldest slot first. Every time
        zone's offset is a multiple of 15 minutes, so charts regroup slots by local hour or day."""
        # fetched_at is a UTC ISO string: '…T14:' is its hour, the next two digits its minute.
        sql = (
            "SELECT substr(fetched_at, 1, 14)"
            " || printf('%02d', CAST(substr(fetched_at, 15, 2) AS INTEGER) / 15 * 15) AS b,"
            " sentiment, COUNT(*) FROM mentions WHERE fetched_at >= ?"
        )
        sql, params = brand_filter(sql, since, brand)
        rows = await self.db.fetchall(sql + " GROUP BY b, sentiment ORDER BY b", params)
        return [(datetime.fromisoformat(f"{r[0]}+00:00"), r[1], int(r[2])) for r in rows]
