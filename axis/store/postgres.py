"""The shared store: PostgreSQL through two asyncpg connection pools, one for the reads and
one for the writes and the reads by keys (whose statements the server plans once:
``WRITE_SETTINGS``).

Several hub workers, on one host or many, use one database. What keeps them correct:

- **No write lock in the request path.** A change locks only the rows it changes (``FOR
  UPDATE``; unique keys for new rows), so workers' changes run side by side. Its log entries
  and counter increments are appended to ``log_pending`` and ``daily_pending``, which no other
  change touches, and commit with it.
- **One chain, linked just after.** A :class:`Chainer` in each worker takes the one
  transaction-scoped advisory lock (``CHAIN_LOCK``), moves every committed pending entry into
  the chain in one order (by the order they were written: an entry that depends on another was
  written after that one committed), and sums the pending increments into ``daily``. One pass
  serves every change committed before it, so the lock is taken once per batch, not once per
  change. A change's call returns at its commit and asks for a pass within ``CHAIN_DELAY_S``
  (which takes whatever else commits meanwhile: 0.17 passes a document on the national mix at
  0.25 s, 0.57 at 0.05 s, where waiting for a pass after each change made 3.4, five round
  trips each; a pass also has a fixed cost, about 1 ms of the server's CPU); a read of the
  chained log or of the statistics first waits for a pass that began after it
  (:meth:`~axis.store.sql_reads.SqlReads._caught_up`), so it sees every change whose call
  returned, in any worker, as before; a change to the directory still returns after its pass
  (this process's observers, its directory in memory among them, have heard of it). The chain
  never forks, and a worker killed in between leaves its entries pending for the next pass of
  any worker (each worker also passes every ``CHAIN_TICK_S``, and once when it opens). ``axis
  log verify`` checks what is chained and reads what is pending as the log's tail;
  ``axis_log_unchained_entries`` is the lag.
- **The pending tables stay small.** Every row of ``log_pending`` and ``daily_pending`` is
  deleted within moments of its insert, so without a vacuum both fill with dead rows that every
  pass scans again: a pass's cost grew with the length of the run. Autovacuum may be off (it is
  on the CI's server) or slow to come; the chainer vacuums the two tables itself after each
  ``VACUUM_AFTER`` entries it links (``SKIP_LOCKED``: a worker that finds another vacuuming
  goes on).
- **Package sequence numbers** come from a sequence, in the order packages were written, which
  may differ from their commit order by what was in flight. An inbox page (``seq > after``) can
  therefore pass over a package that commits late; it stays pending, so the next read from the
  start (every poll and ``take`` starts there) returns it: at-least-once holds.
- **Directory changes** (agencies, codes, systems) check what is there before they change it;
  they take their own advisory lock (``DIRECTORY_LOCK``) and run one at a time.
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

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import asyncpg.transaction

from axis.core.logchain import Draft, LogEntry, linked
from axis.errors import Unavailable
from axis.store import counters, writes
from axis.store.migrations import TRACKING, check_not_newer, pending
from axis.store.rows import LOG_COLUMNS, log_values, marks
from axis.store.sql_reads import SqlReads
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
log = logging.getLogger("axis.store")

CHAIN_LOCK = 0x4158_4953  # "AXIS": held by the one chainer that links pending entries
DIRECTORY_LOCK = 0x4158_4953_44  # held by a change to the directory; the others wait
MIGRATE_LOCK = 0x4158_4953_4D  # held while one worker migrates; the others wait
POOL_SIZE = 10
CHAIN_BATCH = 5000  # pending entries linked per transaction of a pass
CHAIN_TICK_S = 2.0  # a pass at least this often: entries a killed worker left get chained
# A committed change is chained within this (plus the pass), or at once when something reads
# the log or the statistics: nothing waits on this delay, so it is sized for fewer passes.
CHAIN_DELAY_S = 0.25
VACUUM_AFTER = 5000  # entries linked between two vacuums of the pending tables
_VACUUM_PENDING = "VACUUM (SKIP_LOCKED) log_pending, daily_pending"
# Statistics for the planner as the big tables grow. Each prepared statement is planned for its
# values five times, then once for all (a generic plan) if that plan is no dearer; the generic
# plan is kept until the statistics of its tables change. One made while the tables were
# empty and never analyzed looked up deliveries by (recipient, state, seq) and packages by
# (sender, sha256), filtering the rest (11.3 million index tuples read over a 2,000-document
# bench against 0.7 million), so every statement was planned each time (plan_cache_mode
# force_custom_plan): 2.5 ms of the database server's CPU a document on the national mix,
# more than the statements' own execution but for the inserts. Analyzed as they grow (the
# first time after ANALYZE_AFTER linked entries, then each time that count doubles, as
# autovacuum would, which may be off, as on this machine's server), the generic plans read
# as few tuples as the custom ones did. The writes' connections take the generic plan from
# the first call (WRITE_SETTINGS); before the first ANALYZE the tables are a few hundred
# documents small, and an ANALYZE makes every connection plan again.
_ANALYZE = "ANALYZE (SKIP_LOCKED) packages, deliveries"
ANALYZE_AFTER = 5000

_DRAFT_COLUMNS = "at, event, organ_id, package_id, detail, sha256, cert_sha256"
# What a change logged and counted, appended at its end with the writes it held (arrays, one
# per column; WITH ORDINALITY keeps the entries' order, which the chain follows).
_LOG_PENDING = (
    f"INSERT INTO log_pending ({_DRAFT_COLUMNS})"
    f" SELECT {_DRAFT_COLUMNS} FROM unnest(?::text[], ?::text[], ?::text[], ?::text[],"
    f" ?::text[], ?::text[], ?::text[]) WITH ORDINALITY"
    f" AS u({_DRAFT_COLUMNS}, nth) ORDER BY nth"
)
_DAILY_PENDING = (
    "INSERT INTO daily_pending (day, metric, key, n)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[])"
)
# One statement of a chainer's pass, run once it holds CHAIN_LOCK (so its snapshot holds
# everything committed before): every pending increment summed into daily, the oldest
# pending entries taken out, and the chain's head to link them to.
_TAKE_PENDING = (
    "WITH moved AS (DELETE FROM daily_pending RETURNING day, metric, key, n),"
    " folded AS (INSERT INTO daily (day, metric, key, n)"
    " SELECT day, metric, key, sum(n)::bigint FROM moved GROUP BY day, metric, key"
    " ON CONFLICT (day, metric, key) DO UPDATE SET n = daily.n + excluded.n),"
    " taken AS (DELETE FROM log_pending"
    " WHERE id IN (SELECT id FROM log_pending ORDER BY id LIMIT $1)"
    f" RETURNING id, {_DRAFT_COLUMNS}),"
    " head AS (SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1)"
    f" SELECT (SELECT seq FROM head), (SELECT hash FROM head), id, {_DRAFT_COLUMNS}"
    " FROM taken ORDER BY id"
)

# A pass's chained entries, one statement for them all (arrays, one per column of log_values).
_LOG_INSERT_MANY = (
    f"INSERT INTO log ({LOG_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
    " $10::text[])"
)

# A worker that hangs (or loses its network) inside a transaction must not hold its locks
# (the chain's, a directory change's, its rows') for long: the server ends such a session,
# and a wait for a lock gives up, after 30 s; keepalives find a vanished client in about a
# minute instead of two hours.
SESSION_SETTINGS = {
    "idle_in_transaction_session_timeout": "30s",
    "lock_timeout": "30s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}

# The writes' own connections plan each statement once, for every value (a generic plan),
# where the server's default plans it afresh at every call while it guesses that a plan for
# the values is cheaper. A write's statements have no choice worth a plan of its own: rows
# from arrays (``unnest``), and rows found by their keys. Planned afresh, they cost the
# server about a millisecond of CPU a document on the national mix, a fifth of what it did
# (pg_stat_statements with track_planning: 7.1 s planning beside 25.2 s executing over a
# 5,000-document bench, 6.2 s of it the writes' statements). The reads keep the default: an
# inbox page or a list filtered by state is worth a plan for its values, and so is the one
# write that chooses among rows by ranges of time, the claim of due pushes (``per_value``).
# A read that finds its rows by a list of keys (``keyed``: routing's stored edocs, an inbox
# page's bodies) runs here too: its plan is the same whatever the values. On the reads'
# connections the server planned routing's read afresh at 15,035 of its 86,800 calls over a
# 20,000-document bench (most in the first two thousand documents, more after each ANALYZE):
# 0.33 ms of its CPU a document, 70 % of all its planning; over 3,000-document benches it
# swung between 0.5 and 0.9 ms from one run to the next. Planned once: 156 plans, 0.004 ms,
# and each call's execution as before.
WRITE_SETTINGS = {**SESSION_SETTINGS, "plan_cache_mode": "force_generic_plan"}

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


# ``column IN (?, ?, …)`` and ``column NOT IN (?, ?, …)``, as the shared SQL writes a list
_IN_LIST = re.compile(r"([\w.]+) (NOT )?IN \(\?((?:, \?)*)\)")


@functools.lru_cache(maxsize=1024)
def _pg_shape(sql: str) -> tuple[str, tuple[int, ...]]:
    """``sql`` for PostgreSQL (:func:`pg`), each list of placeholders ``IN (?, ?, …)`` one
    array, ``= ANY($n)`` (``<> ALL($n)`` for NOT IN); and for each placeholder left, 0 when
    it takes one value, or how many values its array takes.

    Why: a list's length is part of the statement's text, and asyncpg keeps the statements
    it prepared by their text, 100 a connection. The shared SQL's lists (the packages an
    ack moves, the bodies of a page) made some 380 texts over a run, so most statements
    were prepared again, a round trip more and a parse and plan on the server. With arrays,
    a statement has one text whatever its lists' lengths."""
    sizes: list[int] = []
    parts: list[str] = []
    end = 0
    for match in _IN_LIST.finditer(sql):
        before = sql[end : match.start()]
        sizes += [0] * before.count("?")
        column, negated, more = match.groups()
        parts += [before, f"{column} <> ALL(?)" if negated else f"{column} = ANY(?)"]
        sizes.append(1 + more.count("?"))
        end = match.end()
    rest = sql[end:]
    sizes += [0] * rest.count("?")
    return pg("".join(parts) + rest), tuple(sizes)


def pg_call(sql: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` and its ``args`` (``?`` placeholders, lists written ``IN (?, ?, …)``) as
    PostgreSQL takes them: :func:`_pg_shape`, each list's values passed as one array."""
    text, sizes = _pg_shape(sql)
    if not any(sizes):
        return text, list(args)
    if sum(max(1, size) for size in sizes) != len(args):
        raise ValueError(f"{len(args)} values for the placeholders of {sql!r}")
    values: list[Any] = []
    i = 0
    for size in sizes:
        values.append(list(args[i : i + size]) if size else args[i])
        i += max(1, size)
    return text, values


@functools.cache
def _insert_many(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> str:
    """An INSERT of many rows in one statement: one array a column (``?`` placeholders)."""
    arrays = ", ".join(f"?::{t}[]" for t in types)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"


def _together(statements: list[str], main: str | None = None) -> str:
    """Several data-changing statements as one: each a part of a WITH clause, named ``w0``,
    ``w1``… (they run on one snapshot; see :class:`axis.store.writes.Write`), and ``main``
    after it (without one, the last statement is the main one)."""
    if main is None:
        *statements, main = statements
    if not statements:
        return main
    parts = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(statements))
    return f"WITH {parts} {main}"


@functools.cache
def _insert_numbered(
    table: str, columns: tuple[str, ...], number: str, child: str, child_columns: tuple[str, ...],
    child_types: tuple[str, ...],
) -> tuple[str, str]:  # fmt: skip
    """The two parts of :class:`~axis.store.writes.InsertNumbered`, the first to be ``w0``:
    the row, returning its number, and its children, which read that number from ``w0``."""
    row = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)}) RETURNING {number}"
    arrays = ", ".join(f"?::{t}[]" for t in child_types)
    children = (
        f"INSERT INTO {child} ({', '.join(child_columns)}, {number})"
        f" SELECT *, (SELECT {number} FROM w0) FROM unnest({arrays})"
    )
    return row, children


def _arrays(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as one list a column: how ``unnest`` takes them."""
    return tuple(map(list, zip(*rows, strict=True)))


@contextlib.contextmanager
def _keys_taken() -> Iterator[None]:
    """A unique key another transaction took meanwhile is KeyTaken (the transaction is lost;
    the write may run again), as on SQLite."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise KeyTaken(f"already stored: {exc}") from exc


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class PgTx:
    """One write step's transaction: its connection, the writes its step let it hold, and the
    log entries and counter increments the step wrote, appended at its end.

    Held writes (:class:`~axis.store.writes.Write`, :class:`~axis.store.writes.InsertMany`)
    go to the server together, as one statement, before the next operation that has an
    answer or runs alone, or at the end with the log entries and counters. The transaction
    begins (BEGIN) only when a first statement must go before the end: a step whose every
    operation could be held, ending with :class:`~axis.store.writes.InsertNumbered`, is
    one statement, which commits on its own. A status package took six round trips (BEGIN,
    its row, its deliveries, the status on the delivery it answers, the log, COMMIT); it now
    takes one, or four if it acknowledges (BEGIN, the delivery it moves read first, the rest,
    COMMIT)."""

    conn: asyncpg.Connection
    drafts: list[Draft] = field(default_factory=list)
    bumps: list[counters.Bump] = field(default_factory=list)
    directory: bool = False  # a change to the directory (it serialized)
    held: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)  # ``?`` SQL, args
    transaction: asyncpg.transaction.Transaction | None = None  # begun, not yet ended
    ended: bool = False  # the step's last statement was sent: nothing may follow

    async def begin(self) -> None:
        """BEGIN, unless the step is in its transaction already."""
        if self.transaction is None:
            self.transaction = self.conn.transaction()
            await self.transaction.start()

    async def commit(self) -> None:
        if self.transaction is not None:
            await self.transaction.commit()

    async def rollback(self) -> None:
        if self.transaction is not None:
            await self.transaction.rollback()

    async def execute(self, op: Op) -> Any:
        """One operation of a write step (a unique key taken meanwhile: KeyTaken)."""
        with _keys_taken():
            return await self._execute(op)

    async def _execute(self, op: Op) -> Any:
        if self.ended:
            raise TypeError(f"an operation after the step's last (InsertNumbered): {op!r}")
        match op:
            case InsertNumbered():
                return await self._last(op)
            case Write(sql, args):
                self.held.append((sql, args))
                return None
            case InsertMany(table, columns, types, rows):
                if rows:
                    self.held.append((_insert_many(table, columns, types), _arrays(rows)))
                return None
            case Append(draft):
                self.drafts.append(draft)
                return None
            case Counted(bumps):
                self.bumps.extend(bumps)
                return None
        await self.begin()
        await self._run_held()
        match op:
            case Serialize():
                await self.conn.execute("SELECT pg_advisory_xact_lock($1)", DIRECTORY_LOCK)
                self.directory = True
            case Query(sql, args, pg_lock):
                text, values = pg_call(f"{sql} {pg_lock}" if pg_lock else sql, args)
                rows = await self.conn.fetch(text, *values)
                return [tuple(row) for row in rows]
            case Command(sql, args):
                text, values = pg_call(sql, args)
                return _count(await self.conn.execute(text, *values))
            case CommandMany(sql, rows):
                text = _pg_shape(sql)[0]
                await self.conn.executemany(text, [pg_call(sql, row)[1] for row in rows])
            case _:
                raise TypeError(f"not an operation of a write step: {op!r}")
        return None

    async def _last(self, op: InsertNumbered) -> Any:
        """The step's last operation: the new row and its children, with the rest."""
        row, children = _insert_numbered(
            op.table, op.columns, op.number, op.child, op.child_columns, op.child_pg_types
        )
        statements = [(row, op.values)]
        if op.rows:
            statements.append((children, _arrays(op.rows)))
        return await self._send_last(statements, f"SELECT {op.number} FROM w0")

    async def _send_last(
        self, statements: list[tuple[str, tuple[Any, ...]]], main: str | None = None
    ) -> Any:
        """Send ``statements``, what the step held, and the log entries and counters it
        wrote, as its one last statement: without a transaction begun, it commits on its
        own. Nothing may follow."""
        statements = statements + self._ending()
        self.ended = True
        return await self._run_together(statements, main) if statements else None

    async def _run_held(self) -> None:
        """Send the held writes, together."""
        if self.held:
            await self._run_together(self.held)
            self.held = []

    async def _run_together(
        self, statements: list[tuple[str, tuple[Any, ...]]], main: str | None = None
    ) -> Any:
        """Run ``statements`` as one (:func:`_together`); the first value ``main`` reads."""
        sql, args = pg_call(
            _together([s for s, _ in statements], main),
            [arg for _, args in statements for arg in args],
        )
        if main is None:
            return await self.conn.execute(sql, *args)
        return await self.conn.fetchval(sql, *args)

    async def finish(self) -> None:
        """Send what the step held, and its log entries and counters (unchained), before
        the commit, unless its last operation took them."""
        if not self.ended:
            with _keys_taken():
                await self._send_last([])

    def _ending(self) -> list[tuple[str, tuple[Any, ...]]]:
        """What goes last: the held writes, the log entries and the counters."""
        statements, self.held = self.held, []
        if self.drafts:
            drafts = [
                (d.at, d.event, d.organ_id, d.package_id, d.detail, d.sha256, d.cert_sha256)
                for d in self.drafts
            ]
            statements.append((_LOG_PENDING, _arrays(drafts)))
        bumps = counters.summed(self.bumps)
        if bumps:
            statements.append((_DAILY_PENDING, _arrays(bumps)))
        return statements

    @property
    def logged(self) -> bool:
        return bool(self.drafts or self.bumps)


class Chainer:
    """Links the committed pending entries of every worker into the chain: a pass soon after
    a change commits (:meth:`soon`), at once for whoever waits on one (:meth:`chained`), and
    every ``CHAIN_TICK_S`` regardless (group commit, for the chain)."""

    def __init__(
        self,
        chain_pending: Callable[[], Awaitable[int]],
        tidy: Callable[[int], Awaitable[None]] | None = None,
        delay_s: float = CHAIN_DELAY_S,
    ) -> None:
        self._chain_pending = chain_pending
        self._tidy = tidy
        self.delay_s = delay_s
        self._wake = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="axis-log-chainer")

    async def stop(self) -> None:
        self._cancel_timer()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._release(self._waiting)
        self._waiting = []

    def soon(self) -> None:
        """A change committed entries: a pass within ``delay_s`` (one for every change that
        commits meanwhile), unless one is due already."""
        if self._task is None or self._timer is not None:
            return
        self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._wake.set)

    async def chained(self) -> None:
        """Return once a pass that began after this call has ended (or failed: the change
        has committed all the same, and its entries wait for the next pass)."""
        if self._task is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._wake.set()
        await waiter

    async def _run(self) -> None:
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the event's result
            # when the task is cancelled just as the event is set (a pass asked for, the
            # timer of soon() firing) and the cancellation is lost: stop() waited for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHAIN_TICK_S):
                    await self._wake.wait()
            self._wake.clear()
            self._cancel_timer()  # this pass takes what the timer was set for
            waiting, self._waiting = self._waiting, []
            linked = 0
            try:
                linked = await self._chain_pending()
                failures = 0
            except Unavailable as exc:
                failures += 1
                log.warning("could not chain the pending log entries (they wait): %s", exc)
            except Exception:  # a bug: this task must outlive it, or every write waits forever
                failures += 1
                log.exception("the chainer failed; the pending log entries wait")
            finally:
                self._release(waiting)
            if linked and self._tidy is not None:
                try:
                    await self._tidy(linked)  # after the release: no change waits on it
                except Exception:  # a bug: every read of the log would wait on a dead task
                    log.exception("the chainer's upkeep failed; the chainer goes on")
            if failures:
                await asyncio.sleep(min(CHAIN_TICK_S, 0.1 * 2**failures))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _release(waiting: list[asyncio.Future[None]]) -> None:
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)


class SharedRead(Generic[T]):
    """A read that concurrent callers share, each answered by a read that *began after its
    call*: what a call would have read alone, or newer. While one read is in flight, the
    calls that come wait for the next, which begins when it ends and answers them all. So a
    read asked for by every request costs at most one round trip in flight at a time, not
    one a request, and no call is answered from before it was made."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._next: asyncio.Future[T] | None = None  # the read not begun yet, and its callers
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            # Its outcome is taken even if every caller has gone (no "never retrieved").
            self._next.add_done_callback(lambda f: f.cancelled() or f.exception())
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="axis-shared-read")
        # Shielded: a caller cancelled does not cancel the read the others wait for.
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                answer, self._next = self._next, None
                try:
                    answer.set_result(await self._read())
                except asyncio.CancelledError:
                    answer.cancel()
                    raise
                except Exception as exc:  # every caller of this read gets it
                    answer.set_exception(exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop the read in flight (its callers get CancelledError)."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._next is not None:
            self._next.cancel()
            self._next = None


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released as it is: no reset query. asyncpg's default (unlock all
    advisory locks, close cursors, unlisten, reset settings) costs a round trip on every
    release, once per read; the store leaves no such state behind (its advisory locks are
    transaction-scoped but the migration's, which it unlocks; it opens no cursor outside a
    transaction, listens to nothing and sets nothing after connecting)."""

    def get_reset_query(self) -> str:
        return ""


class PostgresStore(SqlReads, SqlWrites):
    """:class:`axis.store.base.Store` on PostgreSQL (``postgresql://…``)."""

    single_node = False  # other workers may share the database

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None  # reads, and the store's upkeep
        self._writes: asyncpg.Pool | None = None  # writes, chain passes, reads by keys
        self._observers = []
        self._snapshot: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            "axis_pg_snapshot", default=None
        )
        self._chainer = Chainer(self.chain_pending, self._tidy)
        # Every request asks (Directory.refresh): 7.9 round trips a document on the national mix.
        self._directory_changes = SharedRead(functools.partial(SqlReads.directory_changes, self))
        self.vacuum_after = VACUUM_AFTER
        self._since_vacuum = 0
        self.analyze_after = ANALYZE_AFTER  # doubles after each ANALYZE
        self._since_analyze = 0

    # -- connections ------------------------------------------------------------------------

    async def open(self) -> None:
        pool = await self._connect(SESSION_SETTINGS)
        try:
            await self._migrate(pool)
            self._writes = await self._connect(WRITE_SETTINGS)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        # Entries a worker killed between its commit and the next pass left behind.
        with contextlib.suppress(Unavailable):
            await self.chain_pending()
        self._chainer.start()

    async def _connect(self, settings: dict[str, str]) -> asyncpg.Pool:
        """A pool of up to ``pool_size`` connections with these session ``settings``."""
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=60,
                server_settings=settings,
                connection_class=_Connection,
            )
        except _DB_ERRORS + (ValueError,) as exc:
            raise Unavailable(f"cannot open the database: {exc}") from exc
        return pool

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
        await self._chainer.stop()
        await self._directory_changes.close()
        # What this worker's last changes wrote is chained before it goes (its observers
        # hear of it), not left for whichever worker opens next.
        if self._pool is not None:
            with contextlib.suppress(Unavailable):
                await self.chain_pending()
        pools = (self._writes, self._pool)
        self._pool = self._writes = None  # closed or closing: refused from here on
        try:
            if pools[0] is not None:
                await pools[0].close()
        finally:
            if pools[1] is not None:
                await pools[1].close()

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("the store is not open")
        return self._pool

    @property
    def _w(self) -> asyncpg.Pool:
        if self._writes is None:
            raise Unavailable("the store is not open")
        return self._writes

    async def ping(self) -> None:
        await self._read("SELECT 1")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read-only REPEATABLE READ transaction: every read in the block sees one state,
        chained up to when it began (what is chained later, it could not see)."""
        await self._caught_up()
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

    async def _read(
        self, sql: str, args: tuple[Any, ...] = (), *, keyed: bool = False
    ) -> list[Any]:
        """One read: in the snapshot's transaction if one is open; else, ``keyed`` (rows found
        by a list of their keys), on the connections that plan it once, or on the reads'."""
        conn = self._snapshot.get()
        try:
            text, values = pg_call(sql, args)
            rows = await (conn or (self._w if keyed else self._p)).fetch(text, *values)
        except _DB_ERRORS as exc:
            raise Unavailable(f"database read failed: {exc}") from exc
        return [tuple(r) for r in rows]

    _lookup = _read

    async def directory_changes(self) -> int:
        """The count of changes to the directory, read once for every caller waiting (a
        :class:`SharedRead`): as fresh as a read of its own, at far fewer round trips."""
        if self._snapshot.get() is not None:  # a snapshot reads on its own connection
            return await super().directory_changes()
        return await self._directory_changes()

    async def _write(self, step: Step[T], *, per_value: bool = False) -> T:
        """Run a write step in one committed transaction and have its log entries chained
        soon (a change to the directory: wait for that). Database errors leave as
        Unavailable; ours as they are, with the step rolled back. On the writes' connections
        (one plan a statement), or, ``per_value``, on the reads' (the server's default)."""
        pool = self._p if per_value else self._w
        try:
            async with pool.acquire() as conn:
                tx = PgTx(conn)
                try:
                    result = await writes.drive_async(step, tx.execute)
                    await tx.finish()
                except BaseException:
                    await tx.rollback()
                    raise
                await tx.commit()
        except _DB_ERRORS as exc:
            raise Unavailable(f"database write failed: {exc}") from exc
        if tx.directory:
            await self._chainer.chained()
        elif tx.logged:
            self._chainer.soon()
        return result

    async def _caught_up(self) -> None:
        if self._snapshot.get() is None:  # a snapshot caught up as it began
            await self._chainer.chained()

    async def chain_pending(self) -> int:
        """Link every committed pending entry into the chain, and fold the pending counter
        increments into ``daily``: what one pass of the :class:`Chainer` does. Returns how
        many entries it linked."""
        linked = 0
        while True:
            try:
                async with self._w.acquire() as conn:
                    async with conn.transaction():
                        entries, full = await self._chain_batch(conn)
            except _DB_ERRORS as exc:
                raise Unavailable(f"database write failed: {exc}") from exc
            self._committed(entries)
            linked += len(entries)
            if not full:
                return linked

    async def _tidy(self, linked: int) -> None:
        """Vacuum the pending tables once ``vacuum_after`` entries have left them since the
        last time (see the module's docstring), and analyze the big tables once
        ``analyze_after`` entries have been linked since the last time, which then doubles
        (see ``_ANALYZE``). A failure is logged: a later pass tries again."""
        self._since_vacuum += linked
        self._since_analyze += linked
        if self._since_vacuum >= self.vacuum_after:
            self._since_vacuum = 0
            await self._maintain(_VACUUM_PENDING, "vacuum the pending log entries' tables")
        if self._since_analyze >= self.analyze_after:
            if await self._maintain(_ANALYZE, "analyze the packages and deliveries"):
                self._since_analyze = 0
                self.analyze_after *= 2

    async def _maintain(self, sql: str, what: str) -> bool:
        """Run ``sql``; False (and a warning) if it failed."""
        try:
            async with self._p.acquire() as conn:
                await conn.execute(sql)
        except _DB_ERRORS + (Unavailable,) as exc:
            log.warning("could not %s: %s", what, exc)
            return False
        return True

    @staticmethod
    async def _chain_batch(conn: asyncpg.Connection) -> tuple[list[LogEntry], bool]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
        # The next statement reads after the lock (a new snapshot): everything committed
        # before it was taken, the head included.
        rows = await conn.fetch(_TAKE_PENDING, CHAIN_BATCH)
        if not rows:
            return [], False
        head_seq, head_hash = rows[0][0], rows[0][1]
        head = (int(head_seq), str(head_hash)) if head_seq is not None else None
        entries = linked((Draft(*row[3:]) for row in rows), head)
        columns = zip(*(log_values(e) for e in entries), strict=True)
        await conn.execute(_LOG_INSERT_MANY, *(list(c) for c in columns))
        return entries, len(rows) == CHAIN_BATCH
