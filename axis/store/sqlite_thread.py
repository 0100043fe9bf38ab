"""SQLite connections that live on their own threads, and the group-commit writer.

sqlite3 blocks, so each connection belongs to one thread and coroutines hand it whole units of
work: a read is one function, a write transaction is one function. That costs one hop between
the event loop and the thread per unit, where a driver that awaits each statement (aiosqlite)
pays one per statement: an accepted package writes about fifteen statements.

The writer commits in groups. Transactions queued while it was busy run back to back inside
one ``BEGIN IMMEDIATE … COMMIT``, each under its own SAVEPOINT, so one that fails is rolled
back alone and the others still commit. Every caller is answered only after the COMMIT that
holds its work has returned, so "201 once it is durable" still holds; the group pays for one
commit (and one fsync) instead of one each.

What every transaction of a group adds to the same few rows (the log's chain, the daily
counters) it leaves on its :class:`WriteTx` instead; the writer's ``seal`` writes those of the
transactions that succeeded just before the COMMIT, all at once (one read of the chain's head,
one insert of all the entries, one upsert per counter). If that fails, the whole group does.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from axis.core.logchain import Draft, LogEntry
from axis.errors import Unavailable
from axis.store.counters import Bump

T = TypeVar("T")
log = logging.getLogger("axis.store")

MAX_GROUP = 64  # transactions in one commit: bounds how long one group holds the writer


@dataclass
class WriteTx:
    """What a write function gets: the connection, inside an open transaction; what it adds
    to the chain and the counters, which the group's ``seal`` writes (see the module doc);
    and the log entries it committed (told to the observers once the commit has returned)."""

    conn: sqlite3.Connection
    drafts: list[Draft] = field(default_factory=list)
    bumps: list[Bump] = field(default_factory=list)
    appended: list[LogEntry] = field(default_factory=list)


# seal(conn, txs): writes what the group's successful transactions left on their WriteTx,
# in their order, inside the group's transaction (and fills each one's ``appended``).
Seal = Callable[[sqlite3.Connection, list[WriteTx]], None]


@dataclass
class _Job(Generic[T]):
    fn: Callable[[Any], T]
    future: asyncio.Future[T]
    transaction: bool
    tx: WriteTx | None = None
    result: Any = None
    error: BaseException | None = None


class SqliteThread:
    """One sqlite3 connection on one thread. ``call(fn)`` runs ``fn(conn)`` there."""

    def __init__(self, path: Path, setup: Callable[[sqlite3.Connection], None], name: str):
        self.path = path
        self._setup = setup
        self._name = name
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Open the connection on a new thread.

        Raises:
            Unavailable: the database cannot be opened.
        """
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        await self._submit(self._open, transaction=False)

    def _open(self, _: sqlite3.Connection | None) -> None:
        # check_same_thread stays on: only this thread ever touches the connection.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def stop(self) -> None:
        """Finish the queued work, close the connection and end the thread."""
        thread, self._thread = self._thread, None  # from now on new work is refused
        if thread is None:
            return
        self._queue.put(None)  # behind everything already queued, which still runs
        await asyncio.to_thread(thread.join)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the connection's thread, outside any transaction of ours.

        Raises:
            Unavailable: the store is not open, or sqlite3 failed.
        """
        return await self._submit(fn, transaction=False)

    async def _submit(self, fn: Callable[[Any], T], transaction: bool) -> T:
        if self._thread is None or self._loop is None:
            raise Unavailable("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(fn, future, transaction))
        return await future

    # -- the thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                self._run([job])
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, jobs: list[_Job[Any]]) -> None:
        for job in jobs:
            try:
                job.result = job.fn(self._conn)
            except sqlite3.Error as exc:
                job.error = Unavailable(f"database error: {exc}")
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                job.error = exc
        self._answer(jobs)

    def _answer(self, jobs: list[_Job[Any]]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._settle, jobs)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _settle(self, jobs: list[_Job[Any]]) -> None:
        """On the event loop: answer each caller (a cancelled one is simply not told)."""
        for job in jobs:
            if job.future.cancelled():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)


class GroupWriter(SqliteThread):
    """The one writing connection: ``transact(fn)`` runs ``fn(tx)`` in a committed
    transaction, grouped with whatever else is queued (see the module doc)."""

    def __init__(
        self,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        on_commit: Callable[[list[LogEntry]], None],
        seal: Seal | None = None,
    ) -> None:
        super().__init__(path, setup, "axis-sqlite-writer")
        self._on_commit = on_commit
        self._seal = seal
        self.groups = 0  # commits made, and transactions in them: the grouping ratio
        self.transactions = 0

    async def transact(self, fn: Callable[[WriteTx], T]) -> T:
        """Run ``fn`` in a transaction; return once it is committed.

        Raises:
            Unavailable: the store is closed or the database failed (nothing was written);
            anything ``fn`` raises (its work alone is rolled back).
        """
        return await self._submit(fn, transaction=True)

    def _serve(self) -> None:
        try:
            stopping = False
            while not stopping and (job := self._queue.get()) is not None:
                group = [job]
                while len(group) < MAX_GROUP:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    group.append(more)
                self._dispatch(group)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _dispatch(self, group: list[_Job[Any]]) -> None:
        """Run plain calls one by one and consecutive transactions as one commit."""
        run: list[_Job[Any]] = []
        for job in group:
            if job.transaction:
                run.append(job)
                continue
            if run:
                self._commit_group(run)
                run = []
            self._run([job])
        if run:
            self._commit_group(run)

    def _commit_group(self, jobs: list[_Job[Any]]) -> None:
        conn = self._conn
        if conn is None:
            for job in jobs:
                job.error = Unavailable("the store is not open")
            self._answer(jobs)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                self._in_savepoint(conn, job)
            if self._seal is not None:
                self._seal(conn, [j.tx for j in jobs if j.error is None and j.tx is not None])
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the seal's own bug must not end the thread
            # The group could not commit: nothing of it was written, and everyone is told so.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                job.error = Unavailable(f"database write failed: {exc}")
        else:
            self.groups += 1
            self.transactions += len(jobs)
        self._answer(jobs)

    @staticmethod
    def _in_savepoint(conn: sqlite3.Connection, job: _Job[Any]) -> None:
        """One transaction of the group; raises sqlite3.Error only if the group must go."""
        conn.execute("SAVEPOINT job")
        job.tx = WriteTx(conn)
        try:
            job.result = job.fn(job.tx)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            job.error = (
                Unavailable(f"database write failed: {exc}")
                if isinstance(exc, sqlite3.Error)
                else exc
            )
            conn.execute("ROLLBACK TO job")  # undoes this job's work only (the seal skips it)
        conn.execute("RELEASE job")

    def _settle(self, jobs: list[_Job[Any]]) -> None:
        committed = [e for job in jobs if job.error is None and job.tx for e in job.tx.appended]
        try:
            if committed:
                self._on_commit(committed)
        finally:  # an observer's failure must not leave a caller waiting for ever
            super()._settle(jobs)


class WalCheckpointer:
    """Copies the WAL into the database file beside the writer: a PASSIVE checkpoint every
    ``every_s`` seconds, on a connection and a thread of its own.

    The writer's own checkpoint (``wal_autocheckpoint``) runs inside a COMMIT, on the writer's
    thread: every transaction queued behind it waits for the copy and the database file's
    fsync. Measured on the national mix at half rate, that was a stall of 30-65 ms every 2-3
    seconds, and most of the sends slower than 40 ms waited on it. A PASSIVE checkpoint on
    another connection copies what is committed without taking the writer's lock, so the
    writer goes on committing meanwhile. The writer's own checkpoint stays, seldom, as the
    backstop that lets the WAL start again from its beginning (a write starts it again only
    once every frame is copied, which a background pass rarely achieves while the writer keeps
    writing: without the backstop the WAL grew to 500 MB in seconds); by then the background
    has copied nearly everything.

    A pass that fails (a lock held for a moment, a full disk) is logged at most once a
    minute and tried again at the next tick: the backstop still bounds the WAL."""

    def __init__(self, path: Path, every_s: float) -> None:
        self.path = path
        self.every_s = every_s
        self.backfilled = 0  # the WAL's frames in the database file after the last pass
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_at = -60.0

    def start(self) -> None:
        # An event of its own for each thread: a stop that was cancelled while it waited for
        # the old thread must still end that one.
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(stop,), name="axis-sqlite-checkpointer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """End the thread (a pass under way finishes first)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        await asyncio.to_thread(thread.join)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _serve(self, stop: threading.Event) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("the WAL checkpointer cannot open the database: %s", exc)
            return
        try:
            # As the writer's: the copy is synced before the WAL may be written over.
            conn.execute("PRAGMA synchronous=FULL")
            while not stop.wait(self.every_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint on ``conn``."""
        try:
            busy, _, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            now = time.monotonic()
            if now - self._warned_at >= 60:
                self._warned_at = now
                log.warning("a background WAL checkpoint failed (the next one tries): %s", exc)
            return
        if not busy:
            self.backfilled = backfilled
