"""Coalesces work from concurrent callers into shared batches (used for LLM triage).

Sources poll at about the same time (every source starts at once under ``parley run``), and
each poll asks for its fresh mentions to be triaged. Rather than one LLM call per poll, items
are collected per group (brand) for a short window and sent together, up to ``size`` items per
call. A batch that fills up is sent at once; a window of 0 sends each caller's items right away
(one call per group and ``size`` items, as without coalescing). Every caller gets the results
of its own items only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Batch(Generic[T, R]):
    group: str
    items: list[T] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[dict[int, R]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] | None = None
    waiting: int = 0
    """Callers waiting for this batch: when the last one gives up, the call is cancelled."""


class Coalescer(Generic[T, R]):
    """Sends items in batches of up to ``size`` per group, gathered for ``window`` seconds.

    ``send`` receives one batch and returns results by item id (items it has no result for are
    simply missing); an exception it raises reaches every caller of that batch.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[dict[int, R]]],
        *,
        group: Callable[[T], str],
        ident: Callable[[T], int],
        size: int,
        window: float,
    ) -> None:
        if size < 1:
            raise ValueError("batch size must be at least 1")
        self.send = send
        self.group = group
        self.ident = ident
        self.size = size
        self.window = max(0.0, window)
        self._open: dict[str, _Batch[T, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[T]) -> dict[int, R]:
        """Results for ``items`` by id, once the batches holding them were sent."""
        touched: list[_Batch[T, R]] = []
        for item in items:
            key = self.group(item)
            batch = self._open.get(key)
            if batch is None:
                batch = self._open[key] = _Batch(key)
                task = asyncio.create_task(self._run(batch), name=f"batch-{key}")
                batch.task = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            batch.items.append(item)
            if batch not in touched:
                touched.append(batch)
            if len(batch.items) >= self.size:
                self._close(batch)
        if self.window == 0:
            for batch in touched:
                self._close(batch)
        wanted = {self.ident(item) for item in items}
        results: dict[int, R] = {}
        for batch in touched:
            batch.waiting += 1
        try:
            for batch in touched:
                # Shielded: a caller that gives up must not cancel the call others wait for.
                answer = await asyncio.shield(batch.done)
                results.update((k, v) for k, v in answer.items() if k in wanted)
        finally:
            for batch in touched:
                self._leave(batch)
        return results

    async def close(self) -> None:
        """Cancel every batch still gathering or being sent, and wait until they stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _leave(self, batch: _Batch[T, R]) -> None:
        """A caller is done with ``batch``; if nobody waits for its call any more (the last
        caller gave up, e.g. at shutdown), the call is cancelled rather than left running."""
        batch.waiting -= 1
        if batch.waiting == 0 and not batch.done.done() and batch.task is not None:
            self._close(batch)
            batch.task.cancel()

    def _close(self, batch: _Batch[T, R]) -> None:
        """No more items for this batch: later ones open a new batch, and it is sent now."""
        if self._open.get(batch.group) is batch:
            del self._open[batch.group]
        batch.closed.set()

    async def _run(self, batch: _Batch[T, R]) -> None:
        try:
            # With no window, submit() closes the batch before this task first runs.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.closed.wait(), self.window or None)
            self._close(batch)
            batch.done.set_result(await self.send(batch.items))
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except Exception as exc:
            batch.done.set_exception(exc)
