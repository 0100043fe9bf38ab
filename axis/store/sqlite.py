"""The embedded store: one SQLite file in WAL mode.

One writer connection and one reader connection, each with its own thread
(:mod:`axis.store.sqlite_thread`), and a third, read-only, on the event loop for the point
lookups of each request (:mod:`axis.store.sql_reads`). A write is one step of
:mod:`axis.store.writes`, run inside a transaction on the event loop; the writer's thread
commits it (the fsync stays off the loop), together with the transactions that queued up
behind each other (group commit). WAL lets the readers run beside it. ``synchronous=FULL``
makes every commit durable before the hub answers 201.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from axis.core.logchain import linked
from axis.errors import Unavailable
from axis.store import counters, writes
from axis.store.migrations import migrate_sqlite
from axis.store.rows import LOG_HEAD, LOG_INSERT, UPSERT_DAILY, log_values, marks
from axis.store.sql_reads import SqlReads
from axis.store.sqlite_thread import GroupWriter, SqliteThread, WalCheckpointer, WriteTx
from axis.store.writes import (
    Append,
    Command,
    CommandMany,
    Counted,
    InsertMany,
    InsertNumbered,
    KeyTaken,
    Op,
    Query,
    Serialize,
    SqlWrites,
    Step,
    Write,
)

T = TypeVar("T")


# The writer's I/O, measured on the national mix (2,500 documents, alternating runs): 1,000 write
# and 270 read system calls a document, 5.2 ms of system CPU a document in the writer thread,
# a third of the hub's CPU. Two causes, each fixed by one setting:
# - Each transaction of a group commit runs in a savepoint (sqlite_thread.GroupWriter), and a
#   savepoint copies every page it changes that the group had changed already (the tables'
#   last pages, the counters, the log) into a sub-journal, a temporary *file* once past 64 KiB.
#   In memory instead (``temp_store``): the sub-journal is as large as the group's shared pages.
# - A checkpoint every 1,000 pages of WAL (the default, about two documents) copied those same
#   pages into the database again and again; every 10,000 pages (40 MB of WAL), each is copied
#   once for some fifty documents.
# Together: 740 writes and 205 reads a document, 2.8 ms of system CPU; the hub's CPU against the
# simulated agencies' 1.34-1.36 -> 1.25-1.27. (A 64 MB page cache read less but cost more user
# CPU and 67 MB of RSS: not taken.)
#
# Since then the copying is done beside the writer (sqlite_thread.WalCheckpointer, every
# CHECKPOINT_EVERY_S), and the writer's own checkpoint, which holds up every transaction queued
# behind it, is the backstop that restarts the WAL: every 40,000 pages (160 MB of WAL).
WAL_AUTOCHECKPOINT_PAGES = 40_000
CHECKPOINT_EVERY_S = 0.25


def _setup_writer(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    migrate_sqlite(conn)
    # After migrating: a migration's index build on a large file sorts on disk, not in RAM.
    conn.execute("PRAGMA temp_store=MEMORY")


def _setup_reader(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout=10000")


@functools.cache
def _insert_many(table: str, columns: tuple[str, ...]) -> str:
    """The INSERT of one row, which executemany runs for each (made once, not per package)."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)})"


def _execute(tx: WriteTx, op: Op) -> Any:
    """One operation of a write step, on the writer's connection inside its transaction (on
    the event loop: see :class:`GroupWriter`).

    Raises DuplicateConflict for a unique key the step's own check did not see taken (it
    cannot happen with one writer; if it ever does, the client must not retry as for an
    outage), and sqlite3.Error, which the writer turns into Unavailable."""
    try:
        match op:
            case Query(sql, args):
                return tx.conn.execute(sql, args).fetchall()
            case Command(sql, args):
                return tx.conn.execute(sql, args).rowcount
            case Write(sql, args):
                tx.conn.execute(sql, args)  # in process: nothing to gain by holding it
            case CommandMany(sql, rows):
                tx.conn.executemany(sql, rows)
            case InsertMany(table, columns, _, rows):
                tx.conn.executemany(_insert_many(table, columns), rows)
            case InsertNumbered(table, columns, values, number, child, child_columns, _, rows):
                sql = f"{_insert_many(table, columns)} RETURNING {number}"
                given = tx.conn.execute(sql, values).fetchone()[0]
                tx.conn.executemany(
                    _insert_many(child, (*child_columns, number)), [(*r, given) for r in rows]
                )
                return given
            case Append(draft):
                tx.drafts.append(draft)  # chained by _seal with the rest of the group
            case Counted(bumps):
                tx.bumps.extend(bumps)  # summed by _seal with the rest of the group
            case Serialize():
                pass  # this one writer thread runs one transaction at a time anyway
            case _:
                raise TypeError(f"not an operation of a write step: {op!r}")
    except sqlite3.IntegrityError as exc:
        raise KeyTaken(f"already stored: {exc}") from exc
    return None


def _seal(conn: sqlite3.Connection, txs: list[WriteTx]) -> None:
    """Write the log entries and counter increments of a group's committing transactions, just
    before its COMMIT: each entry linked to the head in the group's order (one writer holds
    the file, so the head read here is the head at commit), each counter moved once by the
    sum of the group's increments. A group of sixty-four accepted packages wrote some four
    hundred entries and a thousand upserts one statement each; now two statements and a few
    dozen upserts."""
    drafts = [draft for tx in txs for draft in tx.drafts]
    if drafts:
        head = conn.execute(LOG_HEAD).fetchone()
        entries = linked(drafts, (int(head[0]), str(head[1])) if head else None)
        conn.executemany(LOG_INSERT, [log_values(entry) for entry in entries])
        taken = iter(entries)
        for tx in txs:  # told to the observers once the commit returns
            tx.appended.extend(itertools.islice(taken, len(tx.drafts)))
    conn.executemany(UPSERT_DAILY, counters.summed(b for tx in txs for b in tx.bumps))


class SqliteStore(SqlReads, SqlWrites):
    """:class:`axis.store.base.Store` on one SQLite file."""

    single_node = True  # one hub process (the serve lock) owns the file

    def __init__(self, path: Path, background_checkpoint: bool = False) -> None:
        """``background_checkpoint``: copy the WAL beside the writer (the serving hub's
        store; see :class:`WalCheckpointer`). Left off elsewhere: a second process doing it
        too would only add its copies and fsyncs to the hub's."""
        self.path = path
        self._writer: GroupWriter | None = None
        self._checkpointer = (
            WalCheckpointer(path, CHECKPOINT_EVERY_S) if background_checkpoint else None
        )
        self._reader: SqliteThread | None = None
        self._inline: sqlite3.Connection | None = None
        self._observers = []

    async def open(self) -> None:
        writer = GroupWriter(self.path, _setup_writer, self._committed, _seal)
        reader = SqliteThread(self.path, _setup_reader, "axis-sqlite-reader")
        try:
            await writer.start()  # first: it creates the schema
            await reader.start()
            if self._checkpointer is not None:
                self._checkpointer.start()
            inline = sqlite3.connect(self.path, isolation_level=None)
            inline.execute("PRAGMA query_only=1")
            # WAL readers wait only in rare recovery cases; never hold the loop long for one.
            inline.execute("PRAGMA busy_timeout=1000")
        except (Unavailable, sqlite3.Error) as exc:
            if self._checkpointer is not None:
                await self._checkpointer.stop()
            await writer.stop()
            await reader.stop()
            raise Unavailable(f"cannot open the database {self.path}: {exc}") from exc
        self._writer, self._reader, self._inline = writer, reader, inline

    async def close(self) -> None:
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if self._checkpointer is not None:
            await self._checkpointer.stop()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        for thread in (reader, writer):
            if thread is not None:
                await thread.stop()

    async def ping(self) -> None:
        await self._read("SELECT 1")
        self._w  # noqa: B018 - raises Unavailable when the writer is closed

    @property
    def _w(self) -> GroupWriter:
        if self._writer is None:
            raise Unavailable("the store is not open")
        return self._writer

    @property
    def _r(self) -> SqliteThread:
        if self._reader is None:
            raise Unavailable("the store is not open")
        return self._reader

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read transaction on the reader: WAL keeps its view fixed until the block ends."""
        await self._read("BEGIN")
        try:
            yield
        finally:
            await self._read("COMMIT")

    async def _read(
        self, sql: str, args: tuple[Any, ...] = (), *, keyed: bool = False
    ) -> list[Any]:
        return await self._r.call(lambda conn: conn.execute(sql, args).fetchall())

    async def _lookup(
        self, sql: str, args: tuple[Any, ...] = (), *, keyed: bool = False
    ) -> list[Any]:
        if self._inline is None:
            raise Unavailable("the store is not open")
        try:
            return self._inline.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"database read failed: {exc}") from exc

    async def _write(self, step: Step[T], *, per_value: bool = False) -> T:
        """Run a write step in one committed transaction (grouped with others). SQLite plans
        each statement for its values anyway (``per_value`` changes nothing).

        Database errors leave as Unavailable; errors of ours (DuplicateConflict,
        InvalidTransition) as they are, with the step's work rolled back.
        """
        return await self._w.transact(lambda tx: writes.drive(step, lambda op: _execute(tx, op)))
