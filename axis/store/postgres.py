"""The shared store: PostgreSQL through an asyncpg connection pool.

Several hub workers, on one host or many, use one database. What keeps them correct:

- **One log order.** Every transaction that appends to the hash-chained log first takes one
  transaction-scoped advisory lock (``WRITE_LOCK``), then reads the chain's head: appends are
  serialized, so the chain never forks, and package sequence numbers are handed out in commit
  order (an inbox read by ``seq > after`` never skips a package committed late).
- **Push leases.** Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED``, so two
  workers never claim one delivery; a dead worker's leases expire (``lease_until``) and are
  taken over. A starting worker never gives back leases it does not own: others are alive.
- **Durable answers.** A call returns once its transaction has committed
  (``synchronous_commit`` as the server has it: on by default).

The SQL is the SQLite store's, with ``?`` placeholders numbered for PostgreSQL by :func:`pg`:
the reads (:class:`axis.store.sql_reads.SqlReads`) and the writes (the steps of
:mod:`axis.store.writes`, which this store runs with an asynchronous driver) are written once
for both. Timestamps are ISO 8601 text here too, so both stores sort and convert alike.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from axis.core.logchain import LogEntry
from axis.errors import DuplicateConflict, Unavailable
from axis.store import writes
from axis.store.migrations import TRACKING, check_not_newer, pending
from axis.store.sql_reads import SqlReads
from axis.store.writes import Command, CommandMany, Logged, Op, Query, Serialize, SqlWrites, Step

T = TypeVar("T")

WRITE_LOCK = 0x4158_4953  # "AXIS": the advisory lock that serializes log appends
MIGRATE_LOCK = 0x4158_4953_4D  # held while one worker migrates; the others wait
POOL_SIZE = 10
# A worker that hangs (or loses its network) inside a transaction must not hold the write
# lock for long: the server ends such a session, and a wait for a lock gives up, after 30 s;
# keepalives find a vanished client in about a minute instead of two hours.
SESSION_SETTINGS = {
    "idle_in_transaction_session_timeout": "30s",
    "lock_timeout": "30s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}

# What a database that is down, restarting or unreachable raises through asyncpg.
_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


def pg(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (our SQL has no ``?`` in literals)."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, 1))


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class PgTx:
    """One open write transaction: its connection, whether it holds the write lock, and the
    log entries appended in it."""

    conn: asyncpg.Connection
    serialized: bool = False
    appended: list[LogEntry] = field(default_factory=list)

    async def execute(self, op: Op) -> Any:
        """One operation of a write step. A unique key taken meanwhile is DuplicateConflict
        (the transaction is lost either way), as on SQLite."""
        try:
            return await self._execute(op)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateConflict(f"already stored: {exc}") from exc

    async def _execute(self, op: Op) -> Any:
        match op:
            case Serialize():
                await self.conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                self.serialized = True
            case Query(sql, args, pg_lock):
                rows = await self.conn.fetch(pg(f"{sql} {pg_lock}" if pg_lock else sql), *args)
                return [tuple(row) for row in rows]
            case Command(sql, args):
                return _count(await self.conn.execute(pg(sql), *args))
            case CommandMany(sql, rows):
                await self.conn.executemany(pg(sql), rows)
            case Logged(entry):
                # Without the lock two workers could read the same head and fork the chain.
                assert self.serialized, "a write that logs must yield SERIALIZE first"
                self.appended.append(entry)
            case _:
                raise TypeError(f"not an operation of a write step: {op!r}")
        return None


class PostgresStore(SqlReads, SqlWrites):
    """:class:`axis.store.base.Store` on PostgreSQL (``postgresql://…``)."""

    single_node = False  # other workers may share the database

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._observers = []
        self._snapshot: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            "axis_pg_snapshot", default=None
        )

    # -- connections ------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=60,
                server_settings=SESSION_SETTINGS,
            )
        except _DB_ERRORS + (ValueError,) as exc:
            raise Unavailable(f"cannot open the database: {exc}") from exc
        try:
            await self._migrate(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        """Apply the missing migrations, one worker at a time (a session advisory lock)."""
        try:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
                try:
                    await conn.execute(TRACKING)
                    rows = await conn.fetch("SELECT version FROM schema_migrations")
                    applied = {int(r[0]) for r in rows}
                    check_not_newer(applied)
                    for migration in pending(applied):
                        async with conn.transaction():
                            await conn.execute(migration.postgres())
                            await conn.execute(
                                "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                                migration.version,
                                migration.name,
                                datetime.now(UTC).isoformat(timespec="seconds"),
                            )
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)
        except _DB_ERRORS as exc:
            raise Unavailable(f"cannot migrate the database: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("the store is not open")
        return self._pool

    async def ping(self) -> None:
        await self._read("SELECT 1")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read-only REPEATABLE READ transaction: every read in the block sees one state."""
        try:
            async with self._p.acquire() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    token = self._snapshot.set(conn)
                    try:
                        yield
                    finally:
                        self._snapshot.reset(token)
        except _DB_ERRORS as exc:
            raise Unavailable(f"database read failed: {exc}") from exc

    async def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        conn = self._snapshot.get()
        try:
            rows = await (conn or self._p).fetch(pg(sql), *args)
        except _DB_ERRORS as exc:
            raise Unavailable(f"database read failed: {exc}") from exc
        return [tuple(r) for r in rows]

    _lookup = _read

    async def _write(self, step: Step[T]) -> T:
        """Run a write step in one committed transaction (under the write lock if it logs).
        Database errors leave as Unavailable; ours as they are, with the step rolled back."""
        tx: PgTx | None = None
        try:
            async with self._p.acquire() as conn:
                async with conn.transaction():
                    tx = PgTx(conn)
                    result = await writes.drive_async(step, tx.execute)
        except _DB_ERRORS as exc:
            raise Unavailable(f"database write failed: {exc}") from exc
        self._committed(tx.appended)
        return result
