"""Exactly-once posting across a real crash: a `parley run` worker process is SIGKILLed in the
middle of POST /api/v1/statuses on a loopback fake Mastodon, and a second worker on the same
database must settle the reply without posting it twice.

The worker process and its helpers are in tests/worker_harness.py.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Literal

import pytest

from bot.domain.states import MentionState, ReplyState
from bot.storage.db import Database
from bot.storage.store import Store
from fakes.mastodon import FakeMastodon
from tests.worker_harness import (
    TIMEOUT,
    approve_found_mention,
    prepare,
    serving,
    stop_cleanly,
    wait_for,
    worker,
)


@pytest.mark.parametrize("hold", ["after_store", "before_store"])
async def test_worker_killed_mid_post_then_restarted_posts_exactly_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hold: Literal["after_store", "before_store"],
) -> None:
    server = FakeMastodon()
    parent = server.add_status("@parley is acme down for anyone?", mention=True)

    def replies() -> list[dict[str, object]]:
        return [s for s in server.statuses.values() if s["in_reply_to_id"] == parent["id"]]

    async with serving(server) as base_url:
        paths = prepare(tmp_path, base_url)
        reply = await approve_found_mention(paths, monkeypatch)

        server.hold = hold
        async with worker(paths, "first") as first:

            async def inside_post() -> bool:
                return server.held == 1

            await wait_for(inside_post, "the POST of the reply", first, paths, "first")
            first.kill()  # SIGKILL: nothing runs after this, as in a power cut or OOM kill
            assert await asyncio.wait_for(first.wait(), TIMEOUT) == -signal.SIGKILL
        # "after_store": posted, the answer lost; "before_store": the platform has nothing.
        assert len(replies()) == (1 if hold == "after_store" else 0)
        async with Database.open(paths.db) as db:
            store = Store(db)
            assert (await store.replies.get(reply.id)).state is ReplyState.SENDING
        server.hold = None
        server.release.set()  # the held request ends on a dead connection

        async with worker(paths, "second") as second, Database.open(paths.db) as db:
            store = Store(db)

            async def settled() -> bool:
                return (await store.replies.get(reply.id)).state is ReplyState.SENT

            await wait_for(settled, "the reply to be sent", second, paths, "second")
            await stop_cleanly(second, paths, "second")

            [posted] = replies()
            final = await store.replies.get(reply.id)
            assert final.posted_id == posted["id"] and final.posted_url == posted["url"]
            assert (await store.mentions.get(final.mention_id)).state is MentionState.POSTED
            trail = [e.action for e in await store.audit.trail("reply", reply.id)]

    key = reply.idempotency_key
    assert server.idempotency == {key: posted["id"]}
    if hold == "after_store":
        # Reconciled from /context: the second worker never posted.
        assert server.post_keys == [key]
        assert trail == ["queue", "send", "reconciled"]
    else:
        # Nothing under the parent: re-queued and posted once, with the same key.
        assert server.post_keys == [key, key]
        assert trail == ["queue", "send", "requeue_after_restart", "send", "sent"]
