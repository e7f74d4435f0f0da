"""Replies, the outbox's rows: approval queues one (and moves its mention, in one
transaction), the outbox reads the due ones and moves each through its states, audited."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from datetime import datetime

from bot.domain.models import Actor, Reply, utcnow
from bot.domain.states import MentionState, ReplyState, check_reply
from bot.errors import InvalidTransition, NotFound
from bot.storage.audit import AuditLog
from bot.storage.db import Database
from bot.storage.mentions import MentionRepo
from bot.storage.sql import dt, iso, marks

_SELECT_REPLIES = (
    "SELECT replies.*, (SELECT actor FROM audit_log WHERE entity = 'reply' AND entity_id ="
    " replies.id AND action = 'confirm' ORDER BY id DESC LIMIT 1) AS posted_by_hand FROM replies"
)


def _reply(row: sqlite3.Row) -> Reply:
    return Reply(
        id=row["id"],
        mention_id=row["mention_id"],
        text=row["text"],
        publisher=row["publisher"],
        idempotency_key=row["idempotency_key"],
        state=ReplyState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=dt(row["next_attempt_at"]),
        posted_id=row["posted_id"],
        posted_url=row["posted_url"],
        cost_usd=row["cost_usd"],
        error=row["error"],
        approved_by=row["approved_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        posted_by_hand=row["posted_by_hand"],
    )


class ReplyRepo:
    """Reads and audited writes of replies."""

    def __init__(self, db: Database, audit: AuditLog, mentions: MentionRepo) -> None:
        self.db = db
        self.audit = audit
        self.mentions = mentions

    async def approve(
        self, mention_id: int, text: str, publisher: str, key: str, actor: Actor
    ) -> Reply:
        """Mark the mention approved and queue its reply, atomically."""
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await self.mentions.transition_in(
                conn, mention_id, MentionState.APPROVED, actor, "approve", after_text=text
            )
            try:
                cur = await conn.execute(
                    "INSERT INTO replies (mention_id, text, publisher, idempotency_key, state,"
                    " approved_by, created_at, updated_at, next_attempt_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        mention_id,
                        text,
                        publisher,
                        key,
                        ReplyState.QUEUED.value,
                        actor.label,
                        now,
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise InvalidTransition(
                    f"mention #{mention_id} already has a reply in the queue"
                ) from None
            reply_id = int(cur.lastrowid or 0)
            await self.audit.record(
                conn,
                actor=actor,
                entity="reply",
                entity_id=reply_id,
                action="queue",
                to_state=ReplyState.QUEUED.value,
                after_text=text,
                detail=f"publisher {publisher}",
            )
        return await self.get(reply_id)

    async def get(self, reply_id: int) -> Reply:
        """The reply with this id, or NotFound."""
        row = await self.db.fetchone(f"{_SELECT_REPLIES} WHERE id = ?", (reply_id,))
        if row is None:
            raise NotFound(f"no reply #{reply_id}")
        return _reply(row)

    async def for_mention(self, mention_id: int) -> Reply | None:
        """The newest reply of a mention."""
        row = await self.db.fetchone(
            f"{_SELECT_REPLIES} WHERE mention_id = ? ORDER BY id DESC LIMIT 1", (mention_id,)
        )
        return _reply(row) if row else None

    async def in_states(
        self,
        states: Iterable[ReplyState],
        limit: int = 50,
        *,
        brands: Collection[str] | None = None,
    ) -> list[Reply]:
        """Replies in the given states (to mentions of ``brands``, if given), oldest first."""
        values: list[object] = [s.value for s in states]
        sql = f"{_SELECT_REPLIES} WHERE state IN ({marks(values)})"
        if brands is not None:
            sql += f" AND mention_id IN (SELECT id FROM mentions WHERE brand IN ({marks(brands)}))"
            values.extend(sorted(brands))
        rows = await self.db.fetchall(sql + " ORDER BY id LIMIT ?", (*values, limit))
        return [_reply(r) for r in rows]

    async def due(self, now: datetime, limit: int = 20) -> list[Reply]:
        """Queued replies whose next attempt time has come."""
        rows = await self.db.fetchall(
            f"{_SELECT_REPLIES} WHERE state = 'queued' AND "
            "(next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?",
            (iso(now), limit),
        )
        return [_reply(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        """When the earliest queued reply becomes due."""
        row = await self.db.fetchone(
            "SELECT MIN(next_attempt_at) FROM replies WHERE state = 'queued'"
        )
        return dt(row[0]) if row and row[0] else None

    async def transition(
        self,
        reply_id: int,
        target: ReplyState,
        actor: Actor,
        action: str,
        *,
        expect: Iterable[ReplyState] | None = None,
        error: str | None = None,
        posted_id: str | None = None,
        posted_url: str | None = None,
        cost_usd: float | None = None,
        next_attempt_at: datetime | None = None,
        count_attempt: bool = False,
        mention_target: MentionState | None = None,
    ) -> Reply:
        """Move a reply to ``target`` (and optionally its mention), checked and audited.

        Fsynced before it returns: the outbox commits ``sending`` before a request leaves, and
        a power cut must not roll that mark back (the reply would be re-sent unreconciled)."""
        async with self.db.transaction(durable=True) as conn:
            async with conn.execute(
                "SELECT state, mention_id FROM replies WHERE id = ?", (reply_id,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no reply #{reply_id}")
            current = ReplyState(row[0])
            if expect is not None and current not in set(expect):
                raise InvalidTransition(f"reply #{reply_id} is {current}; cannot {action} it")
            check_reply(current, target)
            await conn.execute(
                "UPDATE replies SET state = ?, updated_at = ?, error = ?, "
                "posted_id = COALESCE(?, posted_id), posted_url = COALESCE(?, posted_url), "
                "cost_usd = COALESCE(?, cost_usd), next_attempt_at = ?, "
                "attempts = attempts + ? WHERE id = ?",
                (
                    target.value,
                    iso(utcnow()),
                    error,
                    posted_id,
                    posted_url,
                    cost_usd,
                    iso(next_attempt_at),
                    int(count_attempt),
                    reply_id,
                ),
            )
            await self.audit.record(
                conn,
                actor=actor,
                entity="reply",
                entity_id=reply_id,
                action=action,
                from_state=current.value,
                to_state=target.value,
                detail=error or posted_url,
            )
            if mention_target is not None:
                await self.mentions.transition_in(conn, int(row[1]), mention_target, actor, action)
        return await self.get(reply_id)
