"""Draft variants of a mention: save a new generation (moving the mention to drafted), read the
current one, select the variant approval will post. Each write is one audited transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from bot.domain.models import Actor, Draft, utcnow
from bot.domain.states import MentionState
from bot.errors import NotFound
from bot.storage.audit import AuditLog
from bot.storage.db import Database
from bot.storage.mentions import MentionRepo
from bot.storage.sql import iso


def _draft(row: sqlite3.Row) -> Draft:
    return Draft(
        id=row["id"],
        mention_id=row["mention_id"],
        variant=row["variant"],
        text=row["text"],
        origin=row["origin"],
        model=row["model"],
        prompt_hash=row["prompt_hash"],
        tokens=row["tokens"],
        created_at=datetime.fromisoformat(row["created_at"]),
        selected=bool(row["selected"]),
        flags=tuple(json.loads(row["flags"])) if row["flags"] else (),
    )


class DraftRepo:
    """Reads and audited writes of drafts."""

    def __init__(self, db: Database, audit: AuditLog, mentions: MentionRepo) -> None:
        self.db = db
        self.audit = audit
        self.mentions = mentions

    async def save(
        self,
        mention_id: int,
        texts: Sequence[tuple[str, str, str | None, str | None, int | None]],
        actor: Actor,
        action: str,
        *,
        flags: Sequence[Sequence[str]] | None = None,
        owed_only: bool = False,
    ) -> list[Draft]:
        """Replace the mention's drafts by new variants (text, origin, model, hash, tokens) and
        move it to drafted; the first variant is selected. ``flags[i]`` are variant i's checks.
        With ``owed_only`` (automatic drafts), nothing is saved, and [] returned, unless the
        mention still owes a draft (a person may have drafted or edited it meanwhile)."""
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            if owed_only:
                async with conn.execute(
                    "SELECT drafting FROM mentions WHERE id = ?", (mention_id,)
                ) as cur:
                    owed = await cur.fetchone()
                if not owed or not owed[0]:
                    return []
            previous = await self._selected_text(conn, mention_id)
            await self.mentions.transition_in(
                conn,
                mention_id,
                MentionState.DRAFTED,
                actor,
                action,
                before_text=previous,
                after_text=texts[0][0] if texts else None,
            )
            await conn.execute("UPDATE drafts SET selected = 0 WHERE mention_id = ?", (mention_id,))
            await conn.execute(
                "UPDATE mentions SET drafting = 0, draft_refused = NULL WHERE id = ?", (mention_id,)
            )
            async with conn.execute(
                "SELECT COALESCE(MAX(variant), 0) FROM drafts WHERE mention_id = ?", (mention_id,)
            ) as cur:
                row = await cur.fetchone()
            base = int(row[0]) if row else 0
            await conn.executemany(
                "INSERT INTO drafts (mention_id, variant, text, origin, model, prompt_hash, tokens,"
                " created_at, selected, flags) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        mention_id,
                        base + i + 1,
                        t,
                        origin,
                        model,
                        h,
                        tokens,
                        now,
                        int(i == 0),
                        json.dumps(list(flags[i])) if flags and flags[i] else None,
                    )
                    for i, (t, origin, model, h, tokens) in enumerate(texts)
                ],
            )
        return await self.current(mention_id)

    async def _selected_text(self, conn: aiosqlite.Connection, mention_id: int) -> str | None:
        async with conn.execute(
            "SELECT text FROM drafts WHERE mention_id = ? AND selected = 1", (mention_id,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def current(self, mention_id: int) -> list[Draft]:
        """The latest generation of drafts for a mention (selected one included)."""
        rows = await self.db.fetchall(
            "SELECT * FROM drafts WHERE mention_id = ? AND created_at = "
            "(SELECT MAX(created_at) FROM drafts WHERE mention_id = ?) ORDER BY variant",
            (mention_id, mention_id),
        )
        return [_draft(r) for r in rows]

    async def select(self, mention_id: int, variant: int, actor: Actor) -> Draft:
        """Make another variant the one that will be posted."""
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT id, text FROM drafts WHERE mention_id = ? AND variant = ?",
                (mention_id, variant),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFound(f"mention #{mention_id} has no draft variant {variant}")
            previous = await self._selected_text(conn, mention_id)
            await conn.execute("UPDATE drafts SET selected = 0 WHERE mention_id = ?", (mention_id,))
            await conn.execute("UPDATE drafts SET selected = 1 WHERE id = ?", (row[0],))
            await self.audit.record(
                conn,
                actor=actor,
                entity="mention",
                entity_id=mention_id,
                action="select_variant",
                before_text=previous,
                after_text=row[1],
                detail=f"variant {variant}",
            )
        selected = await self.selected(mention_id)
        if selected is None:  # pragma: no cover - the row was selected in the transaction
            raise NotFound(f"mention #{mention_id} has no selected draft")
        return selected

    async def selected(self, mention_id: int) -> Draft | None:
        """The draft that approval would post."""
        row = await self.db.fetchone(
            "SELECT * FROM drafts WHERE mention_id = ? AND selected = 1", (mention_id,)
        )
        return _draft(row) if row else None
