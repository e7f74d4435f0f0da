"""The SQLite database: one aiosqlite connection, WAL mode, versioned migrations.

Each migration file in ``migrations/`` is ``NNNN_name.sql`` and carries its own
``BEGIN; … PRAGMA user_version = N; COMMIT;`` (``executescript`` commits any open
transaction first, so a file must be a transaction of its own). Never edit an applied
migration; add the next one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.errors import StorageError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_SYNCHRONOUS = "NORMAL"
"""WAL with NORMAL: a commit is safe from a crash of the process, and may be lost (never
corrupted) by a power cut. Commits that must survive one ask ``transaction(durable=True)``."""


def migrations() -> list[tuple[int, str]]:
    """All bundled migrations as (version, SQL), in order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files("bot.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise StorageError(f"migration files are not numbered 1..N: {versions}")
    return found


class Database:
    """Owns the connection. Every statement runs under one lock, so a transaction is never
    interleaved with another coroutine's statements on the shared connection."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[Database]:
        """Open (creating if needed) and migrate the database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from None
        db = cls(conn, path)
        try:
            await db._setup()
            yield db
        finally:
            await conn.close()

    async def _setup(self) -> None:
        conn = self._conn
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path} is not a usable Parley database ({exc}); "
                "point PARLEY_DB_PATH at another file or restore a backup"
            ) from None

    async def _migrate(self) -> None:
        current = await self.user_version()
        known = migrations()
        latest = known[-1][0] if known else 0
        if current > latest:
            raise StorageError(
                f"{self.path} was written by a newer Parley (schema {current}, this one knows "
                f"{latest}); upgrade Parley"
            )
        for version, sql in known:
            if version > current:
                log.info("applying database migration %04d", version)
                try:
                    await self._conn.executescript(sql)
                except sqlite3.Error:
                    if self._conn.in_transaction:
                        await self._conn.execute("ROLLBACK")
                    raise

    async def user_version(self) -> int:
        """The schema version recorded in the file."""
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on error).

        ``durable``: the commit is fsynced before this returns (``synchronous = FULL`` for this
        transaction only), so a power cut cannot roll it back. The outbox needs it: a reply's
        ``sending`` mark must be on disk before its request leaves.
        """
        async with self._lock:
            if durable:
                await self._conn.execute("PRAGMA synchronous = FULL")
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                else:
                    await self._conn.execute("COMMIT")
            finally:
                if durable:
                    await self._conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS}")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        async with self._lock, self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Run a read query and return the first row, if any."""
        async with self._lock, self._conn.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one write statement as its own transaction."""
        async with self.transaction() as conn:
            await conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement over many rows as one transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)
