"""`parley backup FILE`: a consistent copy while a writer keeps writing; never a clobbered file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.storage.db import Database, migrations

DEADLINE = 60.0


def _migrated(path: Path) -> None:
    async def open_once() -> None:
        async with Database.open(path):
            pass

    asyncio.run(open_once())


class Writer(threading.Thread):
    """Commits two rows per transaction, as fast as it can, until told to stop."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.commits = 0
        self.warmed_up = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("CREATE TABLE IF NOT EXISTS pairs (n INTEGER)")
                while not self.stop.is_set():
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany("INSERT INTO pairs VALUES (?)", [(self.commits,)] * 2)
                    conn.execute("COMMIT")
                    self.commits += 1
                    if self.commits == 50:
                        self.warmed_up.set()
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.warmed_up.set()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    db = tmp_path / "parley.db"
    _migrated(db)
    thread = Writer(db)
    thread.start()
    assert thread.warmed_up.wait(DEADLINE)
    yield thread
    thread.stop.set()
    thread.join(DEADLINE)


def test_backups_taken_while_writing_are_each_one_moment(
    tmp_path: Path,
    writer: Writer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PARLEY_DB_PATH", str(writer.path))
    monkeypatch.chdir(tmp_path)
    counts = []
    for i in range(3):
        before = writer.commits
        target = tmp_path / f"copy{i}.db"
        assert main(["backup", str(target)]) == 0
        assert capsys.readouterr().out.startswith(f"Backed up {writer.path} to {target} (")
        with contextlib.closing(sqlite3.connect(target)) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert copy.execute("PRAGMA user_version").fetchone() == (len(migrations()),)
            rows = copy.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        assert rows % 2 == 0, "a transaction was cut in half"
        assert rows >= 2 * before
        counts.append(rows)
        assert not (tmp_path / f"copy{i}.db-wal").exists()
    writer.stop.set()
    writer.join(DEADLINE)
    assert writer.error is None, writer.error  # the writer was never locked out
    assert counts == sorted(counts)
    assert not list(tmp_path.glob("*.partial"))


def test_an_existing_file_is_kept_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "parley.db"
    _migrated(db)
    monkeypatch.setenv("PARLEY_DB_PATH", str(db))
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "keep.db"
    target.write_text("yesterday's backup")
    assert main(["backup", str(target)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"parley: {target} already exists: choose another name, or add --force"
    ]
    assert target.read_text() == "yesterday's backup"
    assert main(["backup", "--force", str(target)]) == 0
    with contextlib.closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA user_version").fetchone() == (len(migrations()),)


@pytest.mark.parametrize(
    "target,expected",
    [
        ("parley.db", "is the database itself"),
        ("missing/dir/copy.db", "does not exist: create it first"),
        (".", "is a folder: give a file name"),
    ],
)
def test_mistakes_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    expected: str,
) -> None:
    _migrated(tmp_path / "parley.db")
    monkeypatch.chdir(tmp_path)
    assert main(["backup", target]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert expected in line


def test_no_database_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["backup", "copy.db"]) == 1
    assert capsys.readouterr().err == (
        "parley: no database at parley.db: check PARLEY_DB_PATH (nothing was written)\n"
    )
    assert not (tmp_path / "copy.db").exists()
