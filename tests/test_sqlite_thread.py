"""The group-commit writer: transactions that queue together commit together, each one still
all or nothing, and nobody is answered before the commit that holds its work."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from axis.core.logchain import GENESIS, LogEntry, LogEvent, link
from axis.errors import Unavailable
from axis.store.sqlite_thread import MAX_GROUP, GroupWriter, SqliteThread, WalCheckpointer, WriteTx
from tests.helpers import eventually


def setup(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")


def committed_rows(path: Path) -> dict[str, int]:
    """What another connection sees: only committed work."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT k, v FROM t").fetchall())


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[GroupWriter]:
    told: list[LogEntry] = []
    w = GroupWriter(tmp_path / "g.db", setup, told.extend)
    w.told = told  # type: ignore[attr-defined]
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


def insert(k: str, v: int) -> Callable[[WriteTx], str]:
    def fn(tx: WriteTx) -> str:
        tx.conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        at = datetime.now(UTC).isoformat()
        tx.appended.append(link(GENESIS, v, at, LogEvent.RECEIVED, k))
        return k

    return fn


async def test_queued_transactions_commit_in_groups(writer: GroupWriter) -> None:
    keys = await asyncio.gather(*(writer.transact(insert(f"k{n}", n)) for n in range(200)))
    assert keys == [f"k{n}" for n in range(200)]
    assert committed_rows(writer.path) == {f"k{n}": n for n in range(200)}
    assert writer.transactions == 200
    # All 200 were queued before the thread took the first: they need far fewer commits.
    assert writer.groups <= 200 // MAX_GROUP + 2


async def test_a_failing_transaction_is_rolled_back_alone(writer: GroupWriter) -> None:
    def half_then_fail(tx: WriteTx) -> None:
        tx.conn.execute("INSERT INTO t (k, v) VALUES ('bad', 1)")
        tx.appended.append(link(GENESIS, 99, "x", LogEvent.RECEIVED))
        raise ValueError("refused by the caller's rules")

    results = await asyncio.gather(
        writer.transact(insert("a", 1)),
        writer.transact(half_then_fail),
        writer.transact(insert("b", 2)),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError)  # the caller's own error, as it was
    assert committed_rows(writer.path) == {"a": 1, "b": 2}
    told = writer.told  # type: ignore[attr-defined]
    assert [e.seq for e in told] == [1, 2], "only committed entries reach the observers"


async def test_a_database_error_in_one_transaction_is_unavailable_for_it_only(
    writer: GroupWriter,
) -> None:
    await writer.transact(insert("a", 1))
    results = await asyncio.gather(
        writer.transact(insert("a", 5)),  # primary key taken
        writer.transact(insert("c", 3)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Unavailable)
    assert results[1] == "c"
    assert committed_rows(writer.path) == {"a": 1, "c": 3}


async def test_a_group_that_cannot_commit_tells_every_caller(tmp_path: Path) -> None:
    # Another connection holds the write lock past the busy timeout: BEGIN IMMEDIATE fails.
    writer = GroupWriter(tmp_path / "g.db", setup, lambda entries: None, busy_s=0.05)
    await writer.start()
    try:
        with contextlib.closing(sqlite3.connect(writer.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            results = await asyncio.gather(
                *(writer.transact(insert(f"k{n}", n)) for n in range(3)), return_exceptions=True
            )
            other.execute("ROLLBACK")
        assert all(isinstance(r, Unavailable) for r in results)
        assert committed_rows(writer.path) == {}
        assert await writer.transact(insert("later", 1)) == "later"  # the writer goes on
    finally:
        await writer.stop()


async def test_a_failing_observer_does_not_leave_callers_waiting(tmp_path: Path) -> None:
    def broken(entries: list[LogEntry]) -> None:
        raise RuntimeError("observer bug")

    w = GroupWriter(tmp_path / "g.db", setup, broken)
    await w.start()
    try:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _, ctx: errors.append(ctx.get("exception")))
        assert await asyncio.wait_for(w.transact(insert("a", 1)), 5) == "a"
        assert errors and isinstance(errors[0], RuntimeError)
        # More than one group queued at once: the groups after a failed observer still run.
        many = [w.transact(insert(f"k{n}", n)) for n in range(MAX_GROUP + 10)]
        assert len(await asyncio.wait_for(asyncio.gather(*many), 5)) == MAX_GROUP + 10
    finally:
        await w.stop()


async def test_closed_threads_refuse_work(tmp_path: Path) -> None:
    reader = SqliteThread(tmp_path / "r.db", setup, "reader")
    with pytest.raises(Unavailable):
        await reader.call(lambda conn: conn.execute("SELECT 1").fetchall())
    await reader.start()
    assert await reader.call(lambda conn: conn.execute("SELECT 1").fetchall()) == [(1,)]
    await reader.stop()
    with pytest.raises(Unavailable):
        await reader.call(lambda conn: conn.execute("SELECT 1").fetchall())


async def test_a_database_that_cannot_open_is_unavailable(tmp_path: Path) -> None:
    w = GroupWriter(tmp_path / "missing" / "g.db", setup, lambda entries: None)
    with pytest.raises(Unavailable):
        await w.start()
    await w.stop()


async def test_work_queued_before_stop_still_commits(writer: GroupWriter) -> None:
    pending = [asyncio.create_task(writer.transact(insert(f"k{n}", n))) for n in range(20)]
    await asyncio.sleep(0)  # queued, not yet necessarily run
    await writer.stop()
    assert [await task for task in pending] == [f"k{n}" for n in range(20)]
    assert len(committed_rows(writer.path)) == 20
    with pytest.raises(Unavailable):
        await writer.transact(insert("late", 1))


async def test_the_seal_writes_what_the_committing_transactions_left(tmp_path: Path) -> None:
    """The seal runs once a group, before its COMMIT, with the transactions that succeeded:
    what a rolled-back one left for it (a log draft, a counter) is never written."""
    sealed: list[list[str]] = []

    def seal(conn: sqlite3.Connection, txs: list[WriteTx]) -> None:
        keys = [str(draft) for tx in txs for draft in tx.drafts]
        conn.executemany("INSERT INTO t (k, v) VALUES (?, 0)", [(f"sealed-{k}",) for k in keys])
        sealed.append(keys)

    def leave(k: str, fail: bool = False) -> Callable[[WriteTx], str]:
        def fn(tx: WriteTx) -> str:
            tx.conn.execute("INSERT INTO t (k, v) VALUES (?, 1)", (k,))
            tx.drafts.append(k)  # type: ignore[arg-type] # the seal here takes any value
            if fail:
                raise ValueError("refused after leaving work for the seal")
            return k

        return fn

    w = GroupWriter(tmp_path / "g.db", setup, lambda entries: None, seal)
    await w.start()
    try:
        results = await asyncio.gather(
            *(w.transact(leave(f"k{n}", fail=n == 2)) for n in range(5)),
            return_exceptions=True,
        )
    finally:
        await w.stop()
    assert isinstance(results[2], ValueError)
    assert [k for group in sealed for k in group] == ["k0", "k1", "k3", "k4"]
    assert committed_rows(w.path) == {
        **{f"k{n}": 1 for n in (0, 1, 3, 4)},
        **{f"sealed-k{n}": 0 for n in (0, 1, 3, 4)},
    }


def no_autocheckpoint(conn: sqlite3.Connection) -> None:
    setup(conn)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # only the background copies the WAL


def in_database_file(path: Path, tmp: Path) -> dict[str, int]:
    """What the database file alone holds, its WAL left out (a copy opened on its own)."""
    copy = tmp / "file-only.db"
    shutil.copyfile(path, copy)
    with contextlib.closing(sqlite3.connect(copy)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone() is None:
            return {}  # not even the table yet
        return dict(db.execute("SELECT k, v FROM t").fetchall())


async def test_the_checkpointer_copies_committed_work_beside_the_writer(tmp_path: Path) -> None:
    """A PASSIVE checkpoint on a connection of its own copies what the writer committed into
    the database file, the writer's own checkpoints off; it stops when told."""
    path = tmp_path / "g.db"
    w = GroupWriter(path, no_autocheckpoint, lambda entries: None)
    await w.start()
    checkpointer = WalCheckpointer(path, every_s=0.02)
    try:
        await asyncio.gather(*(w.transact(insert(f"k{n}", n)) for n in range(20)))
        assert in_database_file(path, tmp_path) == {}  # in the WAL only, so far
        checkpointer.start()
        assert checkpointer.running

        async def passed() -> bool:
            return checkpointer.backfilled > 0

        await eventually(passed, timeout=10)
        await w.transact(insert("later", 99))  # the writer goes on beside it
        assert committed_rows(path)["later"] == 99
        await checkpointer.stop()  # the file is copied whole, not while a pass writes it
        assert not checkpointer.running
        assert len(in_database_file(path, tmp_path)) >= 20
    finally:
        await checkpointer.stop()
        await w.stop()


async def test_the_transactions_run_on_the_loop_and_a_lock_wait_does_not_hold_it(
    writer: GroupWriter,
) -> None:
    """The statements run on the event loop's thread (no GIL hand-off each); waiting for
    another connection's write lock happens on the writer's thread, and the loop goes on
    (the writer waits up to its busy_s, 10 s)."""
    ran_on: list[int] = []

    def where(tx: WriteTx) -> None:
        ran_on.append(threading.get_ident())
        insert("w", 1)(tx)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    counting = asyncio.create_task(ticker())
    try:
        with contextlib.closing(sqlite3.connect(writer.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(writer.transact(where))
            before = ticks

            async def loop_went_on() -> bool:
                return ticks >= before + 5

            await eventually(loop_went_on, timeout=5)
            assert not waiting.done(), "it waits for the lock"
            other.execute("ROLLBACK")
        await waiting
    finally:
        counting.cancel()
    assert ran_on == [threading.get_ident()]
    assert committed_rows(writer.path) == {"w": 1}


async def test_a_plain_call_keeps_its_place_among_transactions(writer: GroupWriter) -> None:
    seen: list[object] = []
    await asyncio.gather(
        writer.transact(insert("a", 1)),
        writer.call(lambda conn: seen.append(conn.execute("SELECT count(*) FROM t").fetchone()[0])),
        writer.transact(insert("b", 2)),
    )
    assert seen == [1], "after the first transaction's commit, before the second"
    assert committed_rows(writer.path) == {"a": 1, "b": 2}


async def test_a_blocking_write_on_the_loop_does_not_deadlock_with_the_group(
    writer: GroupWriter,
) -> None:
    """The writer never holds the write lock while it waits for the loop, so code on the loop
    that blocks for that lock (here another connection's write) gets it once the COMMIT in
    flight on the writer's thread ends, at any point of the groups' work."""
    queued = [asyncio.create_task(writer.transact(insert(f"k{n}", n))) for n in range(50)]
    with contextlib.closing(sqlite3.connect(writer.path, timeout=5)) as other:
        for n in range(20):
            await asyncio.sleep(0)  # the writer's work moves on a little
            with other:  # a write that blocks the loop until the lock is free
                other.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"other{n}", n))
    await asyncio.gather(*queued)
    assert len(committed_rows(writer.path)) == 70
