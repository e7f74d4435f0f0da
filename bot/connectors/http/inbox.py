"""The queue behind push connectors (the inbound webhook, Meta webhooks): items a server
accepted wait here until the pipeline has stored them.

``fetch`` hands out what is queued together with a cursor naming the last item handed out; the
runner saves that cursor only after storing the batch and passes it back on the next fetch,
which is when those items leave the queue. A failed or slow pipeline therefore re-delivers
instead of losing. Each cursor carries a per-process run id, so a cursor saved by an earlier
process acknowledges nothing here. Keys of recently queued items are remembered so that the
same item pushed twice is queued once.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from typing import Generic, TypeVar

from bot.connectors.base import Cursor

T = TypeVar("T")

RECENT_KEYS = 10_000


class PendingQueue(Generic[T]):
    """A bounded FIFO of accepted items, acknowledged through the source cursor."""

    def __init__(self, size: int, *, remembered: int = RECENT_KEYS) -> None:
        self.size = size
        self._remembered = remembered
        self._run = secrets.token_hex(4)  # a restart starts numbering again
        self._seq = 0
        self._acked = 0
        self._items: deque[tuple[int, T]] = deque()
        self._recent: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def room(self) -> int:
        """How many more items fit."""
        return self.size - len(self._items)

    def seen(self, key: str) -> bool:
        """True if an item with this key was queued recently."""
        return key in self._recent

    def put(self, key: str, item: T) -> None:
        """Queue ``item`` and remember ``key`` (check ``room`` and ``seen`` first)."""
        self._seq += 1
        self._items.append((self._seq, item))
        self._recent[key] = None
        if len(self._recent) > self._remembered:
            self._recent.popitem(last=False)

    def acknowledge(self, cursor: Cursor) -> None:
        """Drop the items a saved cursor of this process names as stored."""
        acked = cursor.get("acked", "")
        if cursor.get("run") != self._run or not acked.isdigit():
            return
        self._acked = max(self._acked, int(acked))
        while self._items and self._items[0][0] <= self._acked:
            self._items.popleft()

    def batch(self, limit: int) -> list[tuple[int, T]]:
        """Up to ``limit`` queued items, oldest first, with their sequence numbers."""
        return [entry for _, entry in zip(range(limit), self._items, strict=False)]

    def cursor(self, last: int | None = None) -> Cursor:
        """The cursor acknowledging everything up to sequence number ``last`` once saved."""
        return {"run": self._run, "acked": str(self._acked if last is None else last)}
