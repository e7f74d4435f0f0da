"""Each source's persisted cursor and health: the last good poll, the last error, failures in
a row, the rate budget left and whether its credentials were refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bot.domain.models import utcnow
from bot.storage.db import Database
from bot.storage.sql import dt, iso


@dataclass
class SourceStatus:
    """Health of one source, for `parley status` and the console."""

    source: str
    cursor: dict[str, str]
    first_poll_done: bool
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    items_seen: int
    rate_limit_remaining: int | None = None
    """Calls left in the platform's rate-limit window after the last poll, when it says."""
    credentials_rejected: bool = False
    """The last failure was a refused token or password: a person must renew it."""


class SourceHealthRepo:
    """The ``source_state`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def status(self, source: str) -> SourceStatus:
        """The persisted cursor and health of a source (defaults if never polled)."""
        row = await self.db.fetchone("SELECT * FROM source_state WHERE source = ?", (source,))
        if row is None:
            return SourceStatus(source, {}, False, None, None, None, 0, 0)
        return SourceStatus(
            source=row["source"],
            cursor=json.loads(row["cursor"]),
            first_poll_done=bool(row["first_poll_done"]),
            last_ok_at=dt(row["last_ok_at"]),
            last_error=row["last_error"],
            last_error_at=dt(row["last_error_at"]),
            consecutive_failures=row["consecutive_failures"],
            items_seen=row["items_seen"],
            rate_limit_remaining=row["rate_limit_remaining"],
            credentials_rejected=bool(row["credentials_rejected"]),
        )

    async def all(self) -> list[SourceStatus]:
        """Health of every source that has ever been polled."""
        rows = await self.db.fetchall("SELECT source FROM source_state ORDER BY source")
        return [await self.status(r[0]) for r in rows]

    async def ok(
        self,
        source: str,
        cursor: dict[str, str],
        items: int,
        *,
        rate_limit_remaining: int | None = None,
    ) -> None:
        """Persist a successful poll's cursor (and the rate budget it left, if known)."""
        await self.db.execute(
            "INSERT INTO source_state (source, cursor, first_poll_done, last_ok_at,"
            " consecutive_failures, items_seen, rate_limit_remaining, credentials_rejected)"
            " VALUES (?,?,1,?,0,?,?,0) "
            "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, first_poll_done = 1,"
            " last_ok_at = excluded.last_ok_at, consecutive_failures = 0,"
            " items_seen = items_seen + excluded.items_seen,"
            " rate_limit_remaining = excluded.rate_limit_remaining, credentials_rejected = 0",
            (source, json.dumps(cursor), iso(utcnow()), items, rate_limit_remaining),
        )

    async def failed(
        self,
        source: str,
        error: str,
        *,
        credentials_rejected: bool = False,
        rate_limit_remaining: int | None = None,
    ) -> int:
        """Record a failed poll; returns the number of consecutive failures."""
        now = iso(utcnow())
        await self.db.execute(
            "INSERT INTO source_state (source, last_error, last_error_at, consecutive_failures,"
            " credentials_rejected, rate_limit_remaining) VALUES (?,?,?,1,?,?)"
            " ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error,"
            " last_error_at = excluded.last_error_at,"
            " consecutive_failures = consecutive_failures + 1,"
            " credentials_rejected = excluded.credentials_rejected,"
            " rate_limit_remaining = COALESCE(excluded.rate_limit_remaining,"
            " rate_limit_remaining)",
            (source, error, now, int(credentials_rejected), rate_limit_remaining),
        )
        status = await self.status(source)
        return status.consecutive_failures
