"""Token usage of every language-model call, for the daily budget and the stats."""

from __future__ import annotations

from datetime import datetime

from bot.domain.models import utcnow
from bot.storage.db import Database
from bot.storage.sql import brand_filter, iso


class LlmUsageRepo:
    """The ``llm_usage`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        *,
        purpose: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        brand: str | None = None,
        mention_id: int | None = None,
        mentions: int = 1,
    ) -> None:
        """Record one LLM call's token usage."""
        at = utcnow()
        await self.db.execute(
            "INSERT INTO llm_usage (at, day, purpose, model, brand, mention_id, mentions,"
            " prompt_tokens, completion_tokens, cached_tokens) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                iso(at),
                at.date().isoformat(),
                purpose,
                model,
                brand,
                mention_id,
                mentions,
                prompt_tokens,
                completion_tokens,
                cached_tokens,
            ),
        )

    async def tokens_on(self, day: str) -> int:
        """Tokens (prompt + completion) spent on a UTC day ('YYYY-MM-DD')."""
        row = await self.db.fetchone(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM llm_usage"
            " WHERE day = ?",
            (day,),
        )
        return int(row[0]) if row else 0

    async def by_purpose(
        self, since: datetime, brand: str | None = None
    ) -> dict[str, tuple[int, int, int]]:
        """Per purpose since ``since``: (calls, tokens, cached prompt tokens)."""
        sql = (
            "SELECT purpose, COUNT(*), SUM(prompt_tokens + completion_tokens),"
            " SUM(cached_tokens) FROM llm_usage WHERE at >= ?"
        )
        sql, params = brand_filter(sql, since, brand, "brand")
        rows = await self.db.fetchall(sql + " GROUP BY purpose", params)
        return {str(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}
