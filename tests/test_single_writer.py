"""One writer per database: a second running Parley is refused with one line naming the first,
a lock left by a killed process is taken over, replies in ``sending`` are reconciled once at
start (never while another sender may be in flight), and the ``sending`` mark is fsynced.

The process tests run real `python -m bot run` workers against the loopback fake Mastodon
(helpers shared with tests/test_crash_worker.py); the rest runs in-process on real files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.__main__ import status
from bot.app import Core, build_core
from bot.changes import Changes
from bot.config import ParleyConfig
from bot.connectors.base import PublishResult
from bot.connectors.registry import Publishers
from bot.demo.runner import run_demo
from bot.domain.models import SYSTEM, Mention, Reply
from bot.domain.states import ReplyState
from bot.errors import DatabaseInUse, PublishError
from bot.events import EventBus
from bot.services.outbox import Outbox
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.instance_lock import hold_instance_lock, lock_path
from bot.storage.store import Store
from fakes.mastodon import FakeMastodon
from tests.conftest import ROOT
from tests.helpers import CM, SteppedClock, eventually, raw
from tests.recording_publisher import RecordingPublisher
from tests.worker_harness import (
    TIMEOUT,
    Paths,
    approve_found_mention,
    prepare,
    serving,
    stderr_of,
    stop_cleanly,
    wait_for,
    worker,
)

HOST = socket.gethostname()


def lock_record(db: Path) -> dict[str, object] | None:
    """What the lock file says about its holder (None when empty)."""
    text = lock_path(db).read_text(encoding="utf-8")
    return json.loads(text) if text else None


# ---- two real processes ----------------------------------------------------------------


async def test_a_second_run_is_refused_and_a_killed_holder_is_taken_over_posting_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeMastodon()
    server.add_status("@parley is acme down for anyone?", mention=True)
    async with serving(server) as base_url:
        paths = slow_platform(prepare(tmp_path, base_url))
        reply = await approve_found_mention(paths, monkeypatch)
        server.hold = "after_store"  # the platform stores the post and answers slowly
        async with worker(paths, "first") as first:

            async def inside_post() -> bool:
                return server.held == 1

            await wait_for(inside_post, "the POST of the reply", first, paths, "first")
            async with worker(paths, "second") as second:
                code = await asyncio.wait_for(second.wait(), TIMEOUT)
            refusal = stderr_of(paths, "second")
            assert code == 1, refusal
            one_line = (
                f"parley: {re.escape(str(paths.db))} is in use by Parley pid {first.pid} on host "
                rf"{re.escape(HOST)} since \d{{4}}-\d\d-\d\d \d\d:\d\d UTC: "
                "stop that one first, or point PARLEY_DB_PATH at another file\n"
            )
            assert re.fullmatch(one_line, refusal), refusal
            assert first.returncode is None and server.post_keys == [reply.idempotency_key]
            first.kill()  # SIGKILL mid-post: the kernel frees the lock, the record stays
            assert await asyncio.wait_for(first.wait(), TIMEOUT) == -signal.SIGKILL
        assert (lock_record(paths.db) or {})["pid"] == first.pid
        server.hold = None
        server.release.set()
        async with worker(paths, "third") as third:
            await wait_for(sent(paths, reply), "the reply to be settled", third, paths, "third")
            assert (lock_record(paths.db) or {})["pid"] == third.pid
            await stop_cleanly(third, paths, "third")
        log = stderr_of(paths, "third")
        assert f"last used by Parley pid {first.pid} on host {HOST}" in log
        assert "did not stop cleanly" in log
        async with Database.open(paths.db) as db:
            trail = [e.action for e in await Store(db).audit.trail("reply", reply.id)]
    assert trail == ["queue", "send", "reconciled"]  # the third worker never posted
    assert server.post_keys == [reply.idempotency_key]
    assert lock_record(paths.db) is None  # a clean stop leaves no record


def slow_platform(paths: Paths) -> Paths:
    """The worker waits for the platform's answer as long as the test may take."""
    text = paths.config.read_text(encoding="utf-8")
    paths.config.write_text(text.replace("timeout = 30", "timeout = 300"), encoding="utf-8")
    return paths


def sent(paths: Paths, reply: Reply) -> Callable[[], Awaitable[bool]]:
    """A condition: ``reply`` is sent (read through a connection of the test's own)."""

    async def check() -> bool:
        async with Database.open(paths.db) as db:
            return (await Store(db).replies.get(reply.id)).state is ReplyState.SENT

    return check


# ---- the lock, in-process --------------------------------------------------------------


def test_the_refusal_is_one_line_naming_pid_host_and_since(tmp_path: Path) -> None:
    db = tmp_path / "parley.db"
    with hold_instance_lock(db) as me:
        with pytest.raises(DatabaseInUse) as refused, hold_instance_lock(db):
            pytest.fail("a second holder got the lock")  # pragma: no cover
        since = me.since.strftime("%Y-%m-%d %H:%M UTC")
        assert str(refused.value) == (
            f"{db} is in use by Parley pid {os.getpid()} on host {HOST} since {since}: "
            "stop that one first, or point PARLEY_DB_PATH at another file"
        )
        assert lock_record(db) == {"pid": os.getpid(), "host": HOST, "since": me.since.isoformat()}
    assert lock_record(db) is None
    with hold_instance_lock(db):  # released: the next one gets it
        pass


def test_a_lock_file_left_by_a_dead_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "parley.db"
    gone = dead_pid()
    record = {"pid": gone, "host": "web1", "since": "2026-12-04T13:50:00+00:00"}
    lock_path(db).write_text(json.dumps(record), encoding="utf-8")
    with caplog.at_level(logging.WARNING), hold_instance_lock(db):
        assert (lock_record(db) or {})["pid"] == os.getpid()
    assert (
        f"last used by Parley pid {gone} on host web1 since 2026-12-04 13:50 UTC, "
        "which did not stop cleanly" in caplog.text
    )


def dead_pid() -> int:
    """The pid of a process that has exited."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


async def test_a_lock_held_by_a_process_killed_with_sigkill_is_free_again(tmp_path: Path) -> None:
    db = tmp_path / "parley.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys, pathlib\n"
        "from bot.storage.instance_lock import hold_instance_lock\n"
        "with hold_instance_lock(pathlib.Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n",
        str(db),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), TIMEOUT) == b"held\n"
        with pytest.raises(DatabaseInUse, match=f"pid {holder.pid} "), hold_instance_lock(db):
            pytest.fail("the lock of a live process was taken")  # pragma: no cover
    finally:
        holder.kill()
        await holder.wait()
        if holder.stdin is not None:
            holder.stdin.close()
    with hold_instance_lock(db):
        assert (lock_record(db) or {})["pid"] == os.getpid()


async def test_a_second_core_is_refused_while_status_still_reads(
    settings: Settings, config: ParleyConfig
) -> None:
    async with build_core(settings, config):
        with pytest.raises(DatabaseInUse):
            async with build_core(settings, config):
                pytest.fail("two cores on one database")  # pragma: no cover
        with pytest.raises(DatabaseInUse, match="give --db another file"):
            await run_demo(settings, settings.parley_db_path)
        lines = await status(settings)  # read-only: no lock needed
        assert "Outbox: 0 replies not yet posted" in lines
    async with build_core(settings, config):
        pass


# ---- the outbox: reconcile once, at start ----------------------------------------------


class GatedPublisher(RecordingPublisher):
    """A recording publisher whose posts wait for ``gate``, and which counts reconciles."""

    def __init__(self, ledger: Path, *, reconcile_failures: int = 0) -> None:
        super().__init__(ledger)
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.reconciled: list[int] = []
        self.reconcile_failures = reconcile_failures

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        self.entered.set()
        await self.gate.wait()
        return await super().publish(reply, mention)

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        self.reconciled.append(reply.id)
        if self.reconcile_failures:
            self.reconcile_failures -= 1
            raise PublishError("503 from platform")
        return await super().reconcile(reply, mention)


@asynccontextmanager
async def outbox_core(
    settings: Settings, config: ParleyConfig, publisher: GatedPublisher
) -> AsyncIterator[Core]:
    """A core posting through ``publisher``; approving does not wake its outbox (tests do)."""
    async with build_core(settings, config) as core:
        publishers = Publishers({publisher.name: publisher}, default=publisher.name)
        core.review.publishers = core.outbox.publishers = publishers
        core.review.on_queued = lambda: None
        core.outbox.base_delay = 0.01
        yield core


async def approved(core: Core, external_id: str) -> Reply:
    """A mention found, alerted, drafted and approved."""
    batch = await core.ingestor.store_batch([raw(external_id, f"Is Acme down? {external_id}")])
    [mention] = await core.alerter.alert(batch, first_poll=False)
    await core.auto_drafts.drain()  # alerts go out first; their drafts follow
    return await core.review.approve(mention.id, CM)


def state_is(core: Core, reply: Reply, state: ReplyState) -> Callable[[], Awaitable[bool]]:
    """A condition on ``reply``'s state."""

    async def check() -> bool:
        return (await core.store.replies.get(reply.id)).state is state

    return check


async def test_the_run_loop_never_reconciles_a_reply_another_sender_has_in_flight(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.json"
    ours, theirs = GatedPublisher(ledger), GatedPublisher(ledger)
    async with outbox_core(settings, config, ours) as core:
        stop = asyncio.Event()
        running = asyncio.create_task(core.outbox.run(stop))
        first = await approved(core, "m1")
        core.outbox.wake()
        await eventually(state_is(core, first, ReplyState.SENT), "the first reply sent")
        # Another sender (as a second process would be) posts a reply, slowly.
        slow = await approved(core, "m2")
        theirs.gate.clear()
        other = Outbox(
            core.store,
            Publishers({"recording": theirs}, default="recording"),
            Changes(core.store, EventBus()),
        )
        in_flight = asyncio.create_task(other.send(slow))
        await asyncio.wait_for(theirs.entered.wait(), TIMEOUT)
        # Our loop goes round (it sends a new reply) and leaves the slow one alone.
        third = await approved(core, "m3")
        core.outbox.wake()
        await eventually(state_is(core, third, ReplyState.SENT), "the third reply sent")
        assert (await core.store.replies.get(slow.id)).state is ReplyState.SENDING
        assert ours.reconciled == []
        theirs.gate.set()
        await asyncio.wait_for(in_flight, TIMEOUT)
        stop.set()
        await asyncio.wait_for(running, TIMEOUT)
        assert (await core.store.replies.get(slow.id)).state is ReplyState.SENT
    keys = [p["key"] for p in ours.posts()]
    assert sorted(keys) == sorted(
        {first.idempotency_key, slow.idempotency_key, third.idempotency_key}
    )


async def test_recover_never_lists_a_reply_this_outbox_is_sending(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    publisher = GatedPublisher(tmp_path / "ledger.json")
    async with outbox_core(settings, config, publisher) as core:
        reply = await approved(core, "m1")
        publisher.gate.clear()
        sending = asyncio.create_task(core.outbox.send(reply))
        await asyncio.wait_for(publisher.entered.wait(), TIMEOUT)
        await core.outbox.recover()
        assert publisher.reconciled == []
        assert (await core.store.replies.get(reply.id)).state is ReplyState.SENDING
        publisher.gate.set()
        await asyncio.wait_for(sending, TIMEOUT)
        assert (await core.store.replies.get(reply.id)).state is ReplyState.SENT
    assert [p["key"] for p in publisher.posts()] == [reply.idempotency_key]


async def test_an_unsettled_reply_from_the_last_run_is_asked_about_again_until_settled(
    settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.json"
    async with outbox_core(settings, config, GatedPublisher(ledger)) as core:
        reply = await approved(core, "m1")
        # The last run posted it and died before recording the answer.
        await core.store.replies.transition(reply.id, ReplyState.SENDING, SYSTEM, "send")
        await core.outbox.publishers.get("recording").publish(
            reply, await core.store.mentions.get(1)
        )
    publisher = GatedPublisher(ledger, reconcile_failures=2)
    async with outbox_core(settings, config, publisher) as core:
        clock = SteppedClock()
        core.outbox.clock, core.outbox.base_delay = clock, 30.0
        stop = asyncio.Event()
        running = asyncio.create_task(core.outbox.run(stop))
        for tries, backoff in ((1, 30), (2, 60)):

            async def asked(tries: int = tries) -> bool:
                return len(publisher.reconciled) == tries

            await eventually(asked, f"reconcile attempt {tries}")
            await core.outbox.quiesce()
            assert len(publisher.reconciled) == tries  # not asked again before its backoff
            clock.advance(backoff)
        await eventually(state_is(core, reply, ReplyState.SENT), "the reply reconciled")
        stop.set()
        await asyncio.wait_for(running, TIMEOUT)
        trail = [e.action for e in await core.store.audit.trail("reply", reply.id)]
    assert publisher.reconciled == [reply.id] * 3  # two failures, backing off, then found
    assert trail == ["queue", "send", "reconciled"]
    assert [p["key"] for p in publisher.posts()] == [reply.idempotency_key]


# ---- durability ------------------------------------------------------------------------


async def test_reply_transitions_are_fsynced_and_other_writes_stay_normal(
    settings: Settings, config: ParleyConfig
) -> None:
    async with build_core(settings, config) as core:
        reply = await approved(core, "m1")
        db = core.store.db
        statements: list[str] = []
        await db._conn.set_trace_callback(statements.append)  # the statements SQLite runs
        await core.store.replies.transition(reply.id, ReplyState.SENDING, SYSTEM, "send")
        await db._conn.set_trace_callback(None)  # type: ignore[arg-type]  # None turns it off
        pragmas = [
            s for s in statements if "synchronous" in s or s in ("BEGIN IMMEDIATE", "COMMIT")
        ]
        assert pragmas == [
            "PRAGMA synchronous = FULL",
            "BEGIN IMMEDIATE",
            "COMMIT",
            "PRAGMA synchronous = NORMAL",
        ]
        row = await db.fetchone("PRAGMA synchronous")
        assert row is not None and row[0] == 1  # NORMAL for everything else
        async with db.transaction(durable=True) as conn, conn.execute("PRAGMA synchronous") as cur:
            inside = await cur.fetchone()
        assert inside is not None and inside[0] == 2  # FULL
