"""SQLite connections that live on their own threads, and the group-commit writer.

sqlite3 blocks, so each connection belongs to one thread and coroutines hand it whole units of
work: a read is one function, a write transaction is one function. That costs one hop between
the event loop and the thread per unit, where a driver that awaits each statement (aiosqlite)
pays one per statement: an accepted package writes about fifteen statements.

The writer commits in groups. Transactions queued while it was busy run back to back inside
one ``BEGIN IMMEDIATE … COMMIT``, each under its own SAVEPOINT, so one that fails is rolled
back alone and the others still commit. Every caller is answered only after the COMMIT that
holds its work has returned, so "201 once it is durable" still holds; the group pays for one
commit (and one fsync) instead of one each. The writer is the exception to "one thread a
connection": its transactions' statements run on the event loop, and only what may wait (the
COMMIT, and a wait for another connection's write lock) on its thread (see
:class:`GroupWriter` for why).

What every transaction of a group adds to the same few rows (the log's chain, the daily
counters) it leaves on its :class:`WriteTx` instead; the writer's ``seal`` writes those of the
transactions that succeeded just before the COMMIT, all at once (one read of the chain's head,
one insert of all the entries, one upsert per counter). If that fails, the whole group does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from axis.core.logchain import Draft, LogEntry
from axis.errors import Unavailable
from axis.store.counters import Bump

T = TypeVar("T")
log = logging.getLogger("axis.store")

MAX_GROUP = 64  # transactions in one commit: bounds how long one group holds the loop


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
    transaction: bool = False  # the group writer's: run inside a group
    tx: WriteTx | None = None
    result: Any = None
    error: BaseException | None = None


class SqliteThread:
    """One sqlite3 connection on one thread. ``call(fn)`` runs ``fn(conn)`` there."""

    def __init__(
        self,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        name: str,
        shared: bool = False,
    ) -> None:
        """``shared``: the connection may also be used from the event loop's thread, never
        at the same time as from its own (the group writer's statements; see there)."""
        self.path = path
        self._shared = shared
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
        await self._submit(self._open)

    def _open(self, _: sqlite3.Connection | None) -> None:
        # check_same_thread stays on unless the connection is shared, and then its one user
        # at a time is the group writer's doing.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=not self._shared)
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
        return await self._submit(fn)

    async def _submit(self, fn: Callable[[Any], T]) -> T:
        """``fn(conn)`` on the thread, its answer (or its error) back on the loop."""
        if self._thread is None or self._loop is None:
            raise Unavailable("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(fn, future))
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
    transaction, grouped with whatever else is queued (see the module doc).

    The group's statements run on the event loop, from its BEGIN IMMEDIATE to the seal; only
    the COMMIT (the fsync) goes to the connection's thread. sqlite3 lets go of the GIL around
    every statement, and a writer thread had to take it back from the busy event loop each
    time: on the national mix that was some 220 futex calls and 80 context switches a
    document, and a quarter of the hub's CPU was the writer's thread. On the loop, a
    statement takes the GIL back from nobody, and a group costs one hop: its COMMIT.

    The write lock is never held while the group waits for the loop: BEGIN, the statements
    and the seal run in one go, and the COMMIT that ends them runs on the thread whatever the
    loop does meanwhile (something on the loop waiting for that lock, another connection of
    a test's, cannot deadlock with it). So the loop itself never waits for the lock either:
    the connection's busy timeout is 0, and when another connection holds the lock the
    thread waits for it to be free (up to ``busy_s``) before the loop tries again. A full
    group holds the loop for MAX_GROUP transactions' statements: some 25 ms, reckoned from
    the writer's 2 ms a document over its five packages, not timed.

    Plain ``call``s keep their place in the order: they run on the thread, between groups."""

    def __init__(
        self,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        on_commit: Callable[[list[LogEntry]], None],
        seal: Seal | None = None,
        busy_s: float = 10.0,
    ) -> None:
        """``busy_s``: how long a group waits for another connection's write lock before
        its callers are told the database is unavailable."""
        super().__init__(path, setup, "axis-sqlite-writer", shared=True)
        self._on_commit = on_commit
        self._seal = seal
        self._busy_s = busy_s
        self._pending: deque[_Job[Any]] = deque()
        self._flushing: asyncio.Task[None] | None = None
        self._closing = False
        self.groups = 0  # commits made, and transactions in them: the grouping ratio
        self.transactions = 0

    def _open(self, conn: sqlite3.Connection | None) -> None:
        super()._open(conn)
        assert self._conn is not None
        self._conn.execute("PRAGMA busy_timeout=0")  # the loop must not wait: see the class doc

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the connection's thread, in its turn among the transactions.

        Raises:
            Unavailable: the store is not open, or sqlite3 failed.
        """
        return await self._enqueue(fn, transaction=False)

    async def transact(self, fn: Callable[[WriteTx], T]) -> T:
        """Run ``fn`` in a transaction; return once it is committed.

        Raises:
            Unavailable: the store is closed or the database failed (nothing was written);
            anything ``fn`` raises (its work alone is rolled back).
        """
        return await self._enqueue(fn, transaction=True)

    async def stop(self) -> None:
        """Commit the work queued so far, then close the connection and end the thread."""
        self._closing = True  # from now on new work is refused
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        await super().stop()

    async def _enqueue(self, fn: Callable[[Any], T], transaction: bool) -> T:
        if self._closing or self._thread is None or self._loop is None:
            raise Unavailable("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Job(fn, future, transaction))
        if self._flushing is None:
            self._flushing = self._loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Until nothing is queued: plain calls one by one, transactions in groups."""
        try:
            while self._pending:
                if self._pending[0].transaction:
                    await self._group()
                    continue
                job = self._pending.popleft()
                try:
                    job.result = await self._submit(job.fn)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    job.error = exc
                self._settle([job])
        finally:
            self._flushing = None

    async def _group(self) -> None:
        """The transactions at the head of the queue (up to MAX_GROUP) in one
        BEGIN IMMEDIATE … COMMIT."""
        conn = self._conn
        jobs: list[_Job[Any]] = []
        try:
            if conn is None:
                raise Unavailable("the store is not open")
            await self._begin(conn)
            # From here to the COMMIT's hop, nothing awaits: see the class doc.
            while len(jobs) < MAX_GROUP and self._pending and self._pending[0].transaction:
                job = self._pending.popleft()
                jobs.append(job)
                self._in_savepoint(conn, job)
            if self._seal is not None:
                self._seal(conn, [j.tx for j in jobs if j.error is None and j.tx is not None])
        except Exception as exc:  # noqa: BLE001 - the seal's own bug must not stop the writer
            self._fail(conn, jobs, exc)
            return
        try:
            await self._submit(_commit)
        except Exception as exc:  # noqa: BLE001 - told to every caller of the group
            self._fail(conn, jobs, exc)
            return
        self.groups += 1
        self.transactions += len(jobs)
        self._settle(jobs)

    async def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE on the loop; while another connection holds the write lock, the
        thread waits for it to be free, up to ``busy_s``.

        Raises:
            Unavailable: still locked after ``busy_s``.
            sqlite3.Error: anything else.
        """
        deadline = time.monotonic() + self._busy_s
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _BUSY or time.monotonic() >= deadline:
                    raise
            await self._submit(lambda c: _until_free(c, deadline))

    def _fail(self, conn: sqlite3.Connection | None, jobs: list[_Job[Any]], exc: Exception) -> None:
        """The group could not commit: nothing of it was written, and everyone is told so."""
        if not jobs:  # BEGIN failed: the transactions waiting now are refused with it
            while len(jobs) < MAX_GROUP and self._pending and self._pending[0].transaction:
                jobs.append(self._pending.popleft())
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        for job in jobs:
            job.error = (
                exc
                if isinstance(exc, Unavailable)
                else Unavailable(f"database write failed: {exc}")
            )
        self._settle(jobs)

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
        """Tell the observers what committed, then answer the callers. An observer's failure
        goes to the loop's exception handler: it must neither leave a caller waiting nor stop
        the writer's work (this runs inside it)."""
        committed = [e for job in jobs if job.error is None and job.tx for e in job.tx.appended]
        try:
            if committed:
                self._on_commit(committed)
        except Exception as exc:  # noqa: BLE001 - reported, and the work goes on
            assert self._loop is not None
            self._loop.call_exception_handler(
                {"message": "an observer of the SQLite writer's commits failed", "exception": exc}
            )
        finally:
            super()._settle(jobs)


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _until_free(conn: sqlite3.Connection, deadline: float) -> None:
    """On the writer's thread: wait until the write lock can be taken (taken and given back
    at once), or until ``deadline``."""
    pause = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in _BUSY or time.monotonic() >= deadline:
                return  # the loop's own try says what is wrong
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        conn.execute("ROLLBACK")
        return


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
