"""Small helpers every repository shares: timestamps as ISO text, chunked IN lists, and the
brand filter of the stats queries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

CHUNK = 500
"""Keeps IN (...) lists under SQLite's host-parameter limit."""


def iso(value: datetime | None) -> str | None:
    """A timestamp as stored (ISO text), None kept."""
    return value.isoformat() if value else None


def dt(value: str | None) -> datetime | None:
    """A stored ISO timestamp back as a datetime, None (or empty) kept as None."""
    return datetime.fromisoformat(value) if value else None


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(values: Collection[object]) -> str:
    """The ``?,?,…`` placeholders of an IN list of ``values``."""
    return ",".join("?" * len(values))


def brand_filter(
    sql: str, since: datetime, brand: str | None, column: str = "brand"
) -> tuple[str, list[Any]]:
    """A stats query (ending in ``… >= ?`` for ``since``) narrowed to one brand if given."""
    if brand:
        return f"{sql} AND {column} = ?", [iso(since), brand]
    return sql, [iso(since)]
