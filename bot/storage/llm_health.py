"""The language model's health as last seen by the running Parley, kept in the database so
``parley status`` (another process) and every chat frontend show the same line.

One JSON value under the ``control_state`` key ``llm_health``, overwritten by the LLM client
whenever a call ends or its circuit breaker changes state (bot/llm/breaker.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.domain.models import utcnow
from bot.storage.db import Database

HEALTH_KEY = "llm_health"
"""control_state key of the LLM health snapshot."""

_WRITER = "parley"
_TIMES = ("since", "last_error_at", "retry_at")


@dataclass(frozen=True)
class LlmHealth:
    """A snapshot of the LLM circuit breaker: ``state`` is closed (calls go to the model),
    open (templates and rules, no calls until ``retry_at``) or half-open (one probe call)."""

    state: str
    endpoint: str
    since: datetime
    """When ``state`` began."""
    calls: int = 0
    """Requests sent since Parley started."""
    failures: int = 0
    """Requests that got no answer (connection refused, timeout) or a 5xx."""
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    retry_at: datetime | None = None
    """While open: when the next (probe) call may go."""


class LlmHealthRepo:
    """Reads and writes the snapshot."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, health: LlmHealth) -> None:
        """Replace the stored snapshot."""
        data: dict[str, Any] = asdict(health)
        for name in _TIMES:
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        await self.db.execute(
            "INSERT INTO control_state (key, value, updated_by, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (HEALTH_KEY, json.dumps(data), _WRITER, utcnow().isoformat()),
        )

    async def clear(self) -> None:
        """Forget the snapshot (Parley runs without a model now)."""
        await self.db.execute("DELETE FROM control_state WHERE key = ?", (HEALTH_KEY,))

    async def load(self) -> LlmHealth | None:
        """The last snapshot, or None when no LLM was ever used with this database."""
        row = await self.db.fetchone("SELECT value FROM control_state WHERE key = ?", (HEALTH_KEY,))
        if row is None:
            return None
        data = json.loads(row[0])
        for name in _TIMES:
            value = data.get(name)
            data[name] = datetime.fromisoformat(value) if value else None
        known = LlmHealth.__dataclass_fields__
        return LlmHealth(**{k: v for k, v in data.items() if k in known})
