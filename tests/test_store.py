"""The SQLite store: migrations, WAL, batches, audit, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.domain.models import SYSTEM, Actor
from bot.domain.states import MentionState
from bot.errors import InvalidTransition, NotFound, StorageError
from bot.storage.db import Database, migrations
from bot.storage.mentions import Copy, NewMention
from bot.storage.store import Store
from tests.helpers import raw


def _new(external_id: str, text: str = "acme is great", **kw: object) -> NewMention:
    return NewMention(
        raw=raw(external_id, text),
        brand="acme",
        rule="product",
        urgent=False,
        canonical_url=f"https://example.com/posts/{external_id}",
        fingerprint=hash(text) & 0x7FFFFFFF,
        **kw,  # type: ignore[arg-type]
    )


async def test_migrates_from_zero_to_head_with_wal(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    async with Database.open(path) as db:
        assert await db.user_version() == migrations()[-1][0]
        row = await db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
        tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master")}
        assert {"mentions", "drafts", "replies", "audit_log", "source_state"} <= tables
    # Opening again applies nothing and keeps the version.
    async with Database.open(path) as db:
        assert await db.user_version() == migrations()[-1][0]


async def test_refuses_a_database_from_a_newer_parley(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StorageError, match="newer Parley"):
        async with Database.open(path):
            pass


async def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable Parley database"):
        async with Database.open(path):
            pass
    assert path.read_bytes().startswith(b"this is not sqlite")  # nothing was destroyed


async def test_insert_batch_assigns_ids_and_counts_copies(store: Store) -> None:
    first, second = _new("a"), _new("b", "acme down again")
    copies = [
        Copy("other", "x1", -1, "https://example.com/posts/a?utm_source=x", "same link"),
        Copy("other", "x2", -1, None, "near-identical text"),
    ]
    await store.mentions.insert_batch([first, second], copies)
    assert second.id == first.id + 1
    mention = await store.mentions.get(first.id)
    assert mention.duplicates == 2 and mention.state is MentionState.NEW
    assert await store.mentions.known_keys([("feed", "a"), ("other", "x1"), ("feed", "zzz")]) == {
        ("feed", "a"),
        ("other", "x1"),
    }
    assert await store.mentions.ids_by_canonical_url(["https://example.com/posts/b"]) == {
        "https://example.com/posts/b": second.id
    }
    # A second batch continues the numbering.
    third = _new("c", "acme something else")
    await store.mentions.insert_batch([third], [])
    assert third.id == second.id + 1


async def test_transitions_are_checked_and_audited(store: Store) -> None:
    item = _new("a")
    await store.mentions.insert_batch([item], [])
    cm = Actor(platform="console", user_id="u1", display_name="Ana")
    await store.mentions.transition(item.id, MentionState.ALERTED, SYSTEM, "alert")
    await store.mentions.transition(item.id, MentionState.IGNORED, cm, "ignore", detail="spam")
    with pytest.raises(InvalidTransition):
        await store.mentions.transition(item.id, MentionState.ALERTED, SYSTEM, "alert")
    trail = await store.audit.trail("mention", item.id)
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in trail] == [
        ("alert", "new", "alerted", "system:parley"),
        ("ignore", "alerted", "ignored", "console:Ana"),
    ]
    assert trail[1].detail == "spam"


async def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    item = _new("a")
    await store.mentions.insert_batch([item], [])
    with pytest.raises(InvalidTransition):
        # new → posted is invalid: neither the state nor an audit row may change.
        await store.mentions.transition(item.id, MentionState.POSTED, SYSTEM, "post")
    assert (await store.mentions.get(item.id)).state is MentionState.NEW
    assert await store.audit.trail("mention", item.id) == []


async def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.mentions.get(404)
    with pytest.raises(NotFound):
        await store.mentions.transition(404, MentionState.ALERTED, SYSTEM, "alert")
    with pytest.raises(NotFound):
        await store.replies.get(404)


async def test_source_cursor_and_failures_persist(tmp_path: Path) -> None:
    path = tmp_path / "cursor.db"
    async with Database.open(path) as db:
        store = Store(db)
        await store.sources.ok("feed", {"etag": '"abc"'}, 3)
        assert await store.sources.failed("feed", "timed out") == 1
        assert await store.sources.failed("feed", "timed out") == 2
    async with Database.open(path) as db:
        status = await Store(db).sources.status("feed")
    assert status.cursor == {"etag": '"abc"'}
    assert status.first_poll_done and status.items_seen == 3
    assert status.consecutive_failures == 2 and status.last_error == "timed out"
