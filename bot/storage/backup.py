"""``parley backup FILE``: a consistent copy of the database, safe while Parley runs.

SQLite's online backup API copies every page in one step inside a single read transaction, so the
copy is one moment of the database even while Parley writes (WAL readers never block writers and
are never blocked by them). The database is opened read-only through a URI, not through
:class:`bot.storage.db.Database`: nothing is migrated and the running instance's lock is left
alone. The copy is written beside the target under a temporary name, checked with
``PRAGMA quick_check`` and only then renamed into place, so a failed or interrupted backup never
leaves a half-written file nor replaces a good one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote

from bot.errors import StorageError


def backup_database(source: Path, target: Path, *, force: bool = False) -> str:
    """Copy the database at ``source`` to ``target``; return the line to print when done."""
    _check_paths(source, target, force=force)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    try:
        _copy(source, partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        message = f"the backup of {source} failed ({exc}); {target} was not written"
        raise StorageError(message) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    size = target.stat().st_size / 1_000_000
    return f"Backed up {source} to {target} ({size:.1f} MB)."


def _check_paths(source: Path, target: Path, *, force: bool) -> None:
    if not source.is_file():
        raise StorageError(f"no database at {source}: check PARLEY_DB_PATH (nothing was written)")
    if target.is_dir():
        raise StorageError(f"{target} is a folder: give a file name, e.g. {target / 'parley.db'}")
    if not target.parent.is_dir():
        raise StorageError(f"the folder {target.parent} does not exist: create it first")
    if target.exists() and target.resolve() == source.resolve():
        raise StorageError(f"{target} is the database itself: give another file name")
    if target.exists() and not force:
        raise StorageError(f"{target} already exists: choose another name, or add --force")


def _copy(source: Path, partial: Path) -> None:
    """The backup proper: read-only source, every page in one step, then a quick check."""
    uri = f"file:{quote(str(source.resolve()))}?mode=ro"
    with (
        contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(partial)) as dst,
    ):
        src.backup(dst)  # pages=-1: the whole database in one step, one snapshot
        verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        # A self-contained file: no -wal beside it to carry along.
        dst.execute("PRAGMA journal_mode = DELETE")
    if verdict != "ok":
        raise sqlite3.DatabaseError(f"the copy failed its check: {verdict}")
