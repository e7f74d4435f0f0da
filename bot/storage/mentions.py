"""Mentions: ingest (known keys, canonical URLs, fingerprints, batch insert), reads (one, the
newest, the ids and count in given states), checked and audited state transitions, drafting
marks, alert references and triage results.

``transition_in`` runs inside a caller's transaction, so drafts and replies move their mention
in the same transaction as their own change."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.domain.models import Actor, Author, Mention, RawMention, Triage, utcnow
from bot.domain.states import MentionState, check_mention
from bot.errors import InvalidTransition, NotFound
from bot.storage.audit import AuditLog
from bot.storage.db import Database
from bot.storage.sql import chunks, dt, iso, marks


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


_MENTION_COLUMNS = (
    "id, source, platform, external_id, url, canonical_url, author_handle, author_name, "
    "author_url, author_reach, title, text, language, created_at, fetched_at, brand, rule, "
    "parent_ref, thread_context, state, urgent, intent, fingerprint, duplicates, updated_at, "
    "answerable"
)

_TRIAGE_COLUMNS = "relevant, sentiment, urgency, needs_reply, triage_reason, triage_by"

_DRAFTING_COLUMNS = "drafting, draft_refused"

_SELECT_COLUMNS = f"{_MENTION_COLUMNS}, {_TRIAGE_COLUMNS}, {_DRAFTING_COLUMNS}"


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
        created_at=dt(row["created_at"]),
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


def _in_states(
    states: tuple[MentionState, ...], brand: str | None, brands: Collection[str] | None
) -> tuple[str, list[object]]:
    """The WHERE clause (and its parameters) of mentions in ``states``, of ``brand`` and
    among ``brands`` when given (an empty collection matches nothing)."""
    sql = f"WHERE state IN ({marks(states)})"
    params: list[object] = [s.value for s in states]
    if brand:
        sql += " AND brand = ?"
        params.append(brand)
    if brands is not None:
        sql += f" AND brand IN ({marks(brands)})" if brands else " AND 0"
        params.extend(sorted(brands))
    return sql, params


def _insert_row(item: NewMention, now: str | None) -> tuple[object, ...]:
    """The ``_MENTION_COLUMNS`` values of a new mention (state new, no copies yet)."""
    raw = item.raw
    return (
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
        iso(raw.created_at),
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


class MentionRepo:
    """Reads and audited writes of mentions."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def known_keys(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, external_id) pairs are already stored, as mentions or as copies."""
        found: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for source, external_id in keys:
            by_source.setdefault(source, []).append(external_id)
        for source, ids in by_source.items():
            for chunk in chunks(ids):
                for table in ("mentions", "mention_copies"):
                    rows = await self.db.fetchall(
                        f"SELECT external_id FROM {table} WHERE source = ? "
                        f"AND external_id IN ({marks(chunk)})",
                        (source, *chunk),
                    )
                    found.update((source, r[0]) for r in rows)
        return found

    async def ids_by_canonical_url(self, urls: Sequence[str]) -> dict[str, int]:
        """The earliest mention stored for each canonical URL."""
        found: dict[str, int] = {}
        for chunk in chunks(list(dict.fromkeys(urls))):
            rows = await self.db.fetchall(
                "SELECT canonical_url, MIN(id) FROM mentions"
                f" WHERE canonical_url IN ({marks(chunk)}) GROUP BY canonical_url",
                chunk,
            )
            found.update((r[0], int(r[1])) for r in rows)
        return found

    async def recent_fingerprints(self, since: datetime) -> list[tuple[int, int]]:
        """(mention id, text fingerprint) of mentions fetched since ``since``."""
        rows = await self.db.fetchall(
            "SELECT id, fingerprint FROM mentions WHERE fetched_at >= ? "
            "AND fingerprint IS NOT NULL ORDER BY id",
            (iso(since),),
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    async def insert_batch(self, new: list[NewMention], copies: list[Copy]) -> None:
        """Insert new mentions (assigning their ids) and record copies, in one transaction.

        ``Copy.mention_id`` may be negative: ``-k`` refers to ``new[k-1]`` of this batch.
        """
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM mentions") as cur:
                row = await cur.fetchone()
            next_id = int(row[0]) + 1 if row else 1
            rows = []
            for item in new:
                item.id = next_id
                next_id += 1
                rows.append(_insert_row(item, now))
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

    async def get(self, mention_id: int) -> Mention:
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

    async def newest(
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
            where.append(f"state IN ({marks(values)})")
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

    async def transition(
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
            await self.transition_in(
                conn, mention_id, target, actor, action, expect, detail, before_text, after_text
            )
        return await self.get(mention_id)

    async def transition_in(
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
        """``transition`` inside the caller's transaction ``conn``; returns the state it left."""
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
            (target.value, iso(utcnow()), mention_id),
        )
        await self.audit.record(
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
                await self.transition_in(conn, mention_id, target, actor, action)

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

    async def save_triage(self, results: Sequence[tuple[int, str, Triage, bool]]) -> None:
        """Store triage results: (mention id, intent, triage, urgent). ``urgent`` only ever
        raises the flag: a watch rule's urgency is never lowered by triage."""
        now = iso(utcnow())
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

    async def ids_in(
        self,
        states: tuple[MentionState, ...],
        *,
        brand: str | None = None,
        limit: int | None = None,
        brands: Collection[str] | None = None,
    ) -> list[int]:
        """Ids of mentions in ``states`` (of one brand, and of ``brands``, if given), urgent
        first, then oldest first."""
        sql, params = _in_states(states, brand, brands)
        sql = "SELECT id FROM mentions " + sql + " ORDER BY urgent DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [int(r[0]) for r in await self.db.fetchall(sql, params)]

    async def count_in(
        self,
        states: tuple[MentionState, ...],
        *,
        brand: str | None = None,
        brands: Collection[str] | None = None,
    ) -> int:
        """How many mentions are in ``states`` (of one brand, and of ``brands``, if given)."""
        sql, params = _in_states(states, brand, brands)
        row = await self.db.fetchone("SELECT COUNT(*) FROM mentions " + sql, params)
        return int(row[0]) if row else 0
