"""One running Parley per database: an exclusive OS lock on ``<database>.lock``.

A running instance (``parley run``, ``parley demo --db``) holds ``fcntl.flock(LOCK_EX)`` on a
sibling file for as long as it runs, and writes who it is (pid, host, start time) into that
file. A second instance finds the lock taken and refuses to start, naming the holder. The
kernel drops the lock when its holder dies, even by ``kill -9``, so a lock left by a dead
process is simply taken over: there is no stale-lock guessing. The record left behind by a
holder that died is reported once, so the log says that the previous run did not stop cleanly.

Read-only commands (``parley status``, ``parley check``) do not take the lock. The lock is
per open file, so two instances in one process exclude each other too. ``flock`` is reliable on
local disks; keep the database off network filesystems.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import DatabaseInUse, StorageError
from bot.localtime import stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """The process that holds (or last held) a database's lock."""

    pid: int
    host: str
    since: datetime

    def describe(self) -> str:
        """In plain words: ``Parley pid 4242 on host web1 since 2026-12-04 13:50 UTC`` (the
        time in PARLEY_TIMEZONE)."""
        return f"Parley pid {self.pid} on host {self.host} since {stamp(self.since)}"

    def to_json(self) -> str:
        """The record written into the lock file."""
        return json.dumps({"pid": self.pid, "host": self.host, "since": self.since.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The record read back; None when the file is empty or not a record."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), datetime.fromisoformat(data["since"]))
        except (ValueError, TypeError, KeyError):
            return None


def lock_path(db_path: Path) -> Path:
    """The lock file beside the database: ``parley.db`` → ``parley.db.lock``."""
    return db_path.with_name(db_path.name + ".lock")


def this_process() -> Holder:
    """The record this process writes when it takes the lock."""
    return Holder(os.getpid(), socket.gethostname(), datetime.now(UTC).replace(microsecond=0))


@contextlib.contextmanager
def hold_instance_lock(db_path: Path) -> Iterator[Holder]:
    """Hold the database's lock for the block, or raise DatabaseInUse naming the holder."""
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot open the lock file {path} ({exc.strerror}); let Parley's user write to "
            "that folder, or point PARLEY_DB_PATH at another file"
        ) from None
    try:
        _lock(fd, db_path)
        me = this_process()
        _take_over(fd, db_path)
        _write(fd, me.to_json())
        try:
            yield me
        finally:
            _write(fd, "")  # a clean stop leaves no record: a record found means a crash
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def _lock(fd: int, db_path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Holder.from_json(_read(fd))
        raise DatabaseInUse(str(db_path), holder.describe() if holder else None) from None
    except OSError as exc:
        raise StorageError(
            f"cannot lock {lock_path(db_path)} ({exc.strerror}); "
            "keep the database on a local disk, not a network share"
        ) from None


def _take_over(fd: int, db_path: Path) -> None:
    """Log the record a previous holder left when it died without releasing cleanly."""
    previous = Holder.from_json(_read(fd))
    if previous is not None:
        log.warning(
            "%s was last used by %s, which did not stop cleanly; taking over "
            "(replies it was sending are checked on the platforms before anything is re-sent)",
            db_path,
            previous.describe(),
        )


def _read(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
