"""Repositories: SQL in, domain objects out. Every state change is checked by the state
machine and audited inside the same transaction, so a double click or a crash cannot leave a
change without its audit row (or the reverse)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.domain.models import (
    Actor,
    AuditEntry,
    Author,
    Draft,
    Mention,
    RawMention,
    Reply,
    Triage,
    utcnow,
)
from bot.domain.states import MentionState, ReplyState, check_mention, check_reply
from bot.errors import InvalidTransition, NotFound
from bot.storage.db import Database

_CHUNK = 500  # keeps IN (...) lists under SQLite's host-parameter limit


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class NewMention:
    """A matched, deduplicated item ready to be inserted."""

    raw: RawMention
    brand: str
    rule: str
    urgent: bool
    canonical_url: str | None
    fingerprint: int
    intent: str | None = None
    id: int = 0


@dataclass
class Copy:
    """An item that collapsed into an existing mention."""

    source: str
    external_id: str
    mention_id: int
    url: str | None
    reason: str


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


_MENTION_COLUMNS = (
    "id, source, platform, external_id, url, canonical_url, author_handle, author_name, "
    "author_url, author_reach, title, text, language, created_at, fetched_at, brand, rule, "
    "parent_ref, thread_context, state, urgent, intent, fingerprint, duplicates, updated_at, "
    "answerable"
)
_TRIAGE_COLUMNS = "relevant, sentiment, urgency, needs_reply, triage_reason, triage_by"
_DRAFTING_COLUMNS = "drafting, draft_refused"
_SELECT_COLUMNS = f"{_MENTION_COLUMNS}, {_TRIAGE_COLUMNS}, {_DRAFTING_COLUMNS}"


def _brand_filter(
    sql: str, since: datetime, brand: str | None, column: str = "brand"
) -> tuple[str, list[Any]]:
    """A stats query (ending in ``… >= ?`` for ``since``) narrowed to one brand if given."""
    if brand:
        return f"{sql} AND {column} = ?", [_iso(since), brand]
    return sql, [_iso(since)]


def _mention(row: sqlite3.Row, alert_refs: dict[str, str] | None = None) -> Mention:
    return Mention(
        id=row["id"],
        source=row["source"],
        platform=row["platform"],
        external_id=row["external_id"],
        url=row["url"],
        canonical_url=row["canonical_url"],
        author=Author(
            handle=row["author_handle"],
            display_name=row["author_name"],
            profile_url=row["author_url"],
            reach=row["author_reach"],
        ),
        title=row["title"],
        text=row["text"],
        language=row["language"],
        created_at=_dt(row["created_at"]),
        fetched_at=datetime.fromisoformat(row["fetched_at"]),
        brand=row["brand"],
        rule=row["rule"],
        parent_ref=row["parent_ref"],
        thread_context=row["thread_context"],
        state=MentionState(row["state"]),
        urgent=bool(row["urgent"]),
        intent=row["intent"],
        triage=_triage(row),
        duplicates=row["duplicates"],
        answerable=bool(row["answerable"]),
        alert_refs=alert_refs or {},
        drafting=bool(row["drafting"]),
        draft_refused=row["draft_refused"],
    )


def _triage(row: sqlite3.Row) -> Triage | None:
    # Rows selected without the triage columns (or not triaged yet) carry no triage.
    # (`in row` would search the values of a sqlite3.Row, hence keys().)
    if "triage_by" not in row.keys() or row["triage_by"] is None:  # noqa: SIM118
        return None
    return Triage(
        relevant=bool(row["relevant"]),
        sentiment=row["sentiment"],
        urgency=row["urgency"],
        needs_reply=bool(row["needs_reply"]),
        reason=row["triage_reason"] or "",
        by=row["triage_by"],
    )


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


_SELECT_REPLIES = (
    "SELECT replies.*, (SELECT actor FROM audit_log WHERE entity = 'reply' AND entity_id ="
    " replies.id AND action = 'confirm' ORDER BY id DESC LIMIT 1) AS posted_by_hand FROM replies"
)
"""Replies with who confirmed a manual post: the audit log records it, so no column repeats it."""


def _reply(row: sqlite3.Row) -> Reply:
    return Reply(
        id=row["id"],
        mention_id=row["mention_id"],
        text=row["text"],
        publisher=row["publisher"],
        idempotency_key=row["idempotency_key"],
        state=ReplyState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        posted_id=row["posted_id"],
        posted_url=row["posted_url"],
        cost_usd=row["cost_usd"],
        error=row["error"],
        approved_by=row["approved_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        posted_by_hand=row["posted_by_hand"],
    )


async def _audit(
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
    await conn.execute(
        "INSERT INTO audit_log (at, actor, entity, entity_id, action, from_state, to_state,"
        " before_text, after_text, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            _iso(utcnow()),
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


class Store:
    """All reads and writes Parley makes, returning domain objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- ingest -------------------------------------------------------------------------

    async def known_keys(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, external_id) pairs are already stored, as mentions or as copies."""
        found: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for source, external_id in keys:
            by_source.setdefault(source, []).append(external_id)
        for source, ids in by_source.items():
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for table in ("mentions", "mention_copies"):
                    rows = await self.db.fetchall(
                        f"SELECT external_id FROM {table} WHERE source = ? "
                        f"AND external_id IN ({marks})",
                        (source, *chunk),
                    )
                    found.update((source, r[0]) for r in rows)
        return found

    async def ids_by_canonical_url(self, urls: Sequence[str]) -> dict[str, int]:
        """The earliest mention stored for each canonical URL."""
        found: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(urls))):
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                f"SELECT canonical_url, MIN(id) FROM mentions WHERE canonical_url IN ({marks}) "
                "GROUP BY canonical_url",
                chunk,
            )
            found.update((r[0], int(r[1])) for r in rows)
        return found

    async def recent_fingerprints(self, since: datetime) -> list[tuple[int, int]]:
        """(mention id, text fingerprint) of mentions fetched since ``since``."""
        rows = await self.db.fetchall(
            "SELECT id, fingerprint FROM mentions WHERE fetched_at >= ? "
            "AND fingerprint IS NOT NULL ORDER BY id",
            (_iso(since),),
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    async def insert_batch(self, new: list[NewMention], copies: list[Copy]) -> None:
        """Insert new mentions (assigning their ids) and record copies, in one transaction.

        ``Copy.mention_id`` may be negative: ``-k`` refers to ``new[k-1]`` of this batch.
        """
        now = _iso(utcnow())
        async with self.db.transaction() as conn:
            async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM mentions") as cur:
                row = await cur.fetchone()
            next_id = int(row[0]) + 1 if row else 1
            rows = []
            for item in new:
                item.id = next_id
                next_id += 1
                raw = item.raw
                rows.append(
                    (
                        item.id,
                        raw.source,
                        raw.platform,
                        raw.external_id,
                        raw.url,
                        item.canonical_url,
                        raw.author.handle,
                        raw.author.display_name,
                        raw.author.profile_url,
                        raw.author.reach,
                        raw.title,
                        raw.text,
                        raw.language,
                        _iso(raw.created_at),
                        now,
                        item.brand,
                        item.rule,
                        raw.parent_ref,
                        raw.thread_context,
                        MentionState.NEW.value,
                        int(item.urgent),
                        item.intent,
                        item.fingerprint,
                        0,
                        now,
                        int(raw.answerable),
                    )
                )
            await conn.executemany(
                f"INSERT INTO mentions ({_MENTION_COLUMNS}) VALUES ({','.join('?' * 26)})",
                rows,
            )
            if copies:
                for c in copies:
                    if c.mention_id < 0:
                        c.mention_id = new[-c.mention_id - 1].id
                await conn.executemany(
                    "INSERT OR IGNORE INTO mention_copies (source, external_id, mention_id, url,"
                    " reason, seen_at) VALUES (?,?,?,?,?,?)",
                    [(c.source, c.external_id, c.mention_id, c.url, c.reason, now) for c in copies],
                )
                await conn.executemany(
                    "UPDATE mentions SET duplicates = duplicates + 1, updated_at = ? WHERE id = ?",
                    [(now, c.mention_id) for c in copies],
                )

    # ---- mentions -----------------------------------------------------------------------

    async def get_mention(self, mention_id: int) -> Mention:
        """The mention with this id, or NotFound."""
        row = await self.db.fetchone(
            f"SELECT {_SELECT_COLUMNS} FROM mentions WHERE id = ?", (mention_id,)
        )
        if row is None:
            raise NotFound(f"no mention #{mention_id}")
        refs = await self.db.fetchall(
            "SELECT frontend, ref FROM alert_messages WHERE mention_id = ?", (mention_id,)
        )
        return _mention(row, {r[0]: r[1] for r in refs})

    async def list_mentions(
        self,
        states: Iterable[MentionState] | None = None,
        *,
        brand: str | None = None,
        limit: int = 20,
    ) -> list[Mention]:
        """Newest first, optionally filtered by state and brand."""
        where, params = [], []
        if states is not None:
            values = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(values))})")
            params.extend(values)
        if brand:
            where.append("brand = ?")
            params.append(brand)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            f"SELECT {_SELECT_COLUMNS} FROM mentions {clause} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_mention(r) for r in rows]

    async def transition_mention(
        self,
        mention_id: int,
        target: MentionState,
        actor: Actor,
        action: str,
        *,
        expect: Iterable[MentionState] | None = None,
        detail: str | None = None,
        before_text: str | None = None,
        after_text: str | None = None,
    ) -> Mention:
        """Move a mention to ``target`` (checked and audited atomically)."""
        async with self.db.transaction() as conn:
            await self._transition_mention(
                conn, mention_id, target, actor, action, expect, detail, before_text, after_text
            )
        return await self.get_mention(mention_id)

    async def _transition_mention(
        self,
        conn: aiosqlite.Connection,
        mention_id: int,
        target: MentionState,
        actor: Actor,
        action: str,
        expect: Iterable[MentionState] | None = None,
        detail: str | None = None,
        before_text: str | None = None,
        after_text: str | None = None,
    ) -> MentionState:
        async with conn.execute("SELECT state FROM mentions WHERE id = ?", (mention_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no mention #{mention_id}")
        current = MentionState(row[0])
        if expect is not None and current not in set(expect):
            raise InvalidTransition(f"mention #{mention_id} is {current}; cannot {action} it")
        check_mention(current, target)
        await conn.execute(
            "UPDATE mentions SET state = ?, updated_at = ? WHERE id = ?",
            (target.value, _iso(utcnow()), mention_id),
        )
        await _audit(
            conn,
            actor=actor,
            entity="mention",
            entity_id=mention_id,
            action=action,
            from_state=current.value,
            to_state=target.value,
            before_text=before_text,
            after_text=after_text,
            detail=detail,
        )
        return current

    async def mark_many(
        self, mention_ids: Sequence[int], target: MentionState, actor: Actor, action: str
    ) -> None:
        """Move several mentions at once (alerting, backlog), each checked and audited."""
        async with self.db.transaction() as conn:
            for mention_id in mention_ids:
                await self._transition_mention(conn, mention_id, target, actor, action)

    async def set_drafting(self, mention_ids: Sequence[int], drafting: bool) -> None:
        """Mark mentions as owing an automatic draft (or no longer); a new mark clears the
        last refusal."""
        await self.db.executemany(
            "UPDATE mentions SET drafting = ?, draft_refused = CASE WHEN ? THEN NULL "
            "ELSE draft_refused END WHERE id = ?",
            [(int(drafting), int(drafting), mention_id) for mention_id in mention_ids],
        )

    async def set_draft_refused(self, mention_id: int, why: str) -> None:
        """Every automatic draft was refused: the alert says ``why`` until drafts are saved."""
        await self.db.execute(
            "UPDATE mentions SET drafting = 0, draft_refused = ? WHERE id = ?", (why, mention_id)
        )

    async def owed_drafts(self) -> list[tuple[int, bool]]:
        """Alerted mentions still owing an automatic draft, oldest first, each with whether
        its alert was posted on its own somewhere (a digest line leaves no reference)."""
        rows = await self.db.fetchall(
            "SELECT m.id, EXISTS (SELECT 1 FROM alert_messages a WHERE a.mention_id = m.id) "
            "FROM mentions m WHERE m.drafting = 1 AND m.state = ? ORDER BY m.id",
            (MentionState.ALERTED.value,),
        )
        return [(int(r[0]), bool(r[1])) for r in rows]

    async def set_alert_ref(self, mention_id: int, frontend: str, ref: str) -> None:
        """Remember where a frontend posted the alert for a mention."""
        await self.db.execute(
            "INSERT INTO alert_messages (mention_id, frontend, ref) VALUES (?,?,?) "
            "ON CONFLICT (mention_id, frontend) DO UPDATE SET ref = excluded.ref",
            (mention_id, frontend, ref),
        )

    # ---- drafts -------------------------------------------------------------------------

    async def save_drafts(
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
        now = _iso(utcnow())
        async with self.db.transaction() as conn:
            if owed_only:
                async with conn.execute(
                    "SELECT drafting FROM mentions WHERE id = ?", (mention_id,)
                ) as cur:
                    owed = await cur.fetchone()
                if not owed or not owed[0]:
                    return []
            previous = await self._selected_text(conn, mention_id)
            await self._transition_mention(
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
        return await self.current_drafts(mention_id)

    async def _selected_text(self, conn: aiosqlite.Connection, mention_id: int) -> str | None:
        async with conn.execute(
            "SELECT text FROM drafts WHERE mention_id = ? AND selected = 1", (mention_id,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def current_drafts(self, mention_id: int) -> list[Draft]:
        """The latest generation of drafts for a mention (selected one included)."""
        rows = await self.db.fetchall(
            "SELECT * FROM drafts WHERE mention_id = ? AND created_at = "
            "(SELECT MAX(created_at) FROM drafts WHERE mention_id = ?) ORDER BY variant",
            (mention_id, mention_id),
        )
        return [_draft(r) for r in rows]

    async def select_draft(self, mention_id: int, variant: int, actor: Actor) -> Draft:
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
            await _audit(
                conn,
                actor=actor,
                entity="mention",
                entity_id=mention_id,
                action="select_variant",
                before_text=previous,
                after_text=row[1],
                detail=f"variant {variant}",
            )
        selected = await self.selected_draft(mention_id)
        if selected is None:  # pragma: no cover - the row was selected in the transaction
            raise NotFound(f"mention #{mention_id} has no selected draft")
        return selected

    async def selected_draft(self, mention_id: int) -> Draft | None:
        """The draft that approval would post."""
        row = await self.db.fetchone(
            "SELECT * FROM drafts WHERE mention_id = ? AND selected = 1", (mention_id,)
        )
        return _draft(row) if row else None

    # ---- replies (the outbox) -----------------------------------------------------------

    async def approve(
        self, mention_id: int, text: str, publisher: str, key: str, actor: Actor
    ) -> Reply:
        """Mark the mention approved and queue its reply, atomically."""
        now = _iso(utcnow())
        async with self.db.transaction() as conn:
            await self._transition_mention(
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
            await _audit(
                conn,
                actor=actor,
                entity="reply",
                entity_id=reply_id,
                action="queue",
                to_state=ReplyState.QUEUED.value,
                after_text=text,
                detail=f"publisher {publisher}",
            )
        return await self.get_reply(reply_id)

    async def get_reply(self, reply_id: int) -> Reply:
        """The reply with this id, or NotFound."""
        row = await self.db.fetchone(f"{_SELECT_REPLIES} WHERE id = ?", (reply_id,))
        if row is None:
            raise NotFound(f"no reply #{reply_id}")
        return _reply(row)

    async def reply_for_mention(self, mention_id: int) -> Reply | None:
        """The newest reply of a mention."""
        row = await self.db.fetchone(
            f"{_SELECT_REPLIES} WHERE mention_id = ? ORDER BY id DESC LIMIT 1", (mention_id,)
        )
        return _reply(row) if row else None

    async def replies(
        self,
        states: Iterable[ReplyState],
        limit: int = 50,
        *,
        brands: Collection[str] | None = None,
    ) -> list[Reply]:
        """Replies in the given states (to mentions of ``brands``, if given), oldest first."""
        values: list[object] = [s.value for s in states]
        sql = f"{_SELECT_REPLIES} WHERE state IN ({','.join('?' * len(values))})"
        if brands is not None:
            marks = ",".join("?" * len(brands))
            sql += f" AND mention_id IN (SELECT id FROM mentions WHERE brand IN ({marks}))"
            values.extend(sorted(brands))
        rows = await self.db.fetchall(sql + " ORDER BY id LIMIT ?", (*values, limit))
        return [_reply(r) for r in rows]

    async def due_replies(self, now: datetime, limit: int = 20) -> list[Reply]:
        """Queued replies whose next attempt time has come."""
        rows = await self.db.fetchall(
            f"{_SELECT_REPLIES} WHERE state = 'queued' AND "
            "(next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?",
            (_iso(now), limit),
        )
        return [_reply(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        """When the earliest queued reply becomes due."""
        row = await self.db.fetchone(
            "SELECT MIN(next_attempt_at) FROM replies WHERE state = 'queued'"
        )
        return _dt(row[0]) if row and row[0] else None

    async def transition_reply(
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
                    _iso(utcnow()),
                    error,
                    posted_id,
                    posted_url,
                    cost_usd,
                    _iso(next_attempt_at),
                    int(count_attempt),
                    reply_id,
                ),
            )
            await _audit(
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
                await self._transition_mention(conn, int(row[1]), mention_target, actor, action)
        return await self.get_reply(reply_id)

    # ---- audit --------------------------------------------------------------------------

    async def audit_trail(self, entity: str, entity_id: int) -> list[AuditEntry]:
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

    async def audit_note(
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
            await _audit(
                conn,
                actor=actor,
                entity=entity,
                entity_id=entity_id,
                action=action,
                detail=detail,
                after_text=after_text,
            )

    # ---- sources ------------------------------------------------------------------------

    async def source_status(self, source: str) -> SourceStatus:
        """The persisted cursor and health of a source (defaults if never polled)."""
        row = await self.db.fetchone("SELECT * FROM source_state WHERE source = ?", (source,))
        if row is None:
            return SourceStatus(source, {}, False, None, None, None, 0, 0)
        return SourceStatus(
            source=row["source"],
            cursor=json.loads(row["cursor"]),
            first_poll_done=bool(row["first_poll_done"]),
            last_ok_at=_dt(row["last_ok_at"]),
            last_error=row["last_error"],
            last_error_at=_dt(row["last_error_at"]),
            consecutive_failures=row["consecutive_failures"],
            items_seen=row["items_seen"],
            rate_limit_remaining=row["rate_limit_remaining"],
            credentials_rejected=bool(row["credentials_rejected"]),
        )

    async def all_source_status(self) -> list[SourceStatus]:
        """Health of every source that has ever been polled."""
        rows = await self.db.fetchall("SELECT source FROM source_state ORDER BY source")
        return [await self.source_status(r[0]) for r in rows]

    async def source_ok(
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
            (source, json.dumps(cursor), _iso(utcnow()), items, rate_limit_remaining),
        )

    async def source_failed(
        self,
        source: str,
        error: str,
        *,
        credentials_rejected: bool = False,
        rate_limit_remaining: int | None = None,
    ) -> int:
        """Record a failed poll; returns the number of consecutive failures."""
        now = _iso(utcnow())
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
        status = await self.source_status(source)
        return status.consecutive_failures

    # ---- triage and LLM usage -----------------------------------------------------------

    async def save_triage(self, results: Sequence[tuple[int, str, Triage, bool]]) -> None:
        """Store triage results: (mention id, intent, triage, urgent). ``urgent`` only ever
        raises the flag: a watch rule's urgency is never lowered by triage."""
        now = _iso(utcnow())
        await self.db.executemany(
            "UPDATE mentions SET intent = ?, relevant = ?, sentiment = ?, urgency = ?,"
            " needs_reply = ?, triage_reason = ?, triage_by = ?, urgent = MAX(urgent, ?),"
            " updated_at = ? WHERE id = ?",
            [
                (
                    intent,
                    int(t.relevant),
                    t.sentiment,
                    t.urgency,
                    int(t.needs_reply),
                    t.reason,
                    t.by,
                    int(urgent),
                    now,
                    mention_id,
                )
                for mention_id, intent, t, urgent in results
            ],
        )

    async def record_llm_usage(
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
                _iso(at),
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

    async def llm_tokens_on(self, day: str) -> int:
        """Tokens (prompt + completion) spent on a UTC day ('YYYY-MM-DD')."""
        row = await self.db.fetchone(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM llm_usage"
            " WHERE day = ?",
            (day,),
        )
        return int(row[0]) if row else 0

    async def llm_usage_by_purpose(
        self, since: datetime, brand: str | None = None
    ) -> dict[str, tuple[int, int, int]]:
        """Per purpose since ``since``: (calls, tokens, cached prompt tokens)."""
        sql = (
            "SELECT purpose, COUNT(*), SUM(prompt_tokens + completion_tokens),"
            " SUM(cached_tokens) FROM llm_usage WHERE at >= ?"
        )
        sql, params = _brand_filter(sql, since, brand, "brand")
        rows = await self.db.fetchall(sql + " GROUP BY purpose", params)
        return {str(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}

    # ---- stats --------------------------------------------------------------------------

    async def count_by(
        self, column: str, since: datetime, brand: str | None = None
    ) -> dict[str, int]:
        """Mentions fetched since ``since`` grouped by a column (state, platform, brand, intent)."""
        if column not in {"state", "platform", "brand", "intent", "source"}:
            raise ValueError(column)
        sql = f"SELECT COALESCE({column}, '?'), COUNT(*) FROM mentions WHERE fetched_at >= ?"
        sql, params = _brand_filter(sql, since, brand, "brand")
        rows = await self.db.fetchall(sql + f" GROUP BY {column}", params)
        return {str(r[0]): int(r[1]) for r in rows}

    async def response_seconds(self, since: datetime, brand: str | None = None) -> list[float]:
        """Seconds from fetch to reply sent, for replies sent since ``since``."""
        sql = (
            "SELECT m.fetched_at, r.updated_at FROM replies r"
            " JOIN mentions m ON m.id = r.mention_id WHERE r.state = 'sent' AND r.updated_at >= ?"
        )
        sql, params = _brand_filter(sql, since, brand, "m.brand")
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
        sql, params = _brand_filter(sql, since, brand, "m.brand")
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
        sql, params = _brand_filter(sql, since, brand)
        rows = await self.db.fetchall(sql + " GROUP BY b, sentiment ORDER BY b", params)
        return [(datetime.fromisoformat(f"{r[0]}+00:00"), r[1], int(r[2])) for r in rows]
