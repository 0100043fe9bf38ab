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

The SQL is the SQLite store's, with ``?`` placeholders numbered for PostgreSQL by :func:`pg`;
the reads are shared (:class:`axis.store.sql_reads.SqlReads`), as are the row conversions and
the counters. Timestamps are ISO 8601 text here too, so both stores sort and convert alike.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from axis.core.lifecycle import DeliveryEvent, DeliveryState, next_state
from axis.core.logchain import GENESIS, Checkpoint, LogEntry, LogEvent, link, received_detail
from axis.core.stats import Metric
from axis.errors import DuplicateConflict, Unavailable
from axis.store import counters
from axis.store.base import Agency, Delivery, NewPackage, PackageRecord, PushJob
from axis.store.migrations import TRACKING, check_not_newer, pending
from axis.store.rows import (
    AGENCY_COLUMNS,
    DELIVERY_COLUMNS,
    LOG_HEAD,
    LOG_INSERT,
    PACKAGE_COLUMNS,
    UPSERT_DAILY,
    delivery_row,
    log_values,
    package_row,
    ts,
)
from axis.store.sql_reads import SqlReads

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
    """One open write transaction: its connection and the log entries appended in it."""

    conn: asyncpg.Connection
    appended: list[LogEntry] = field(default_factory=list)

    async def execute(self, sql: str, *args: Any) -> str:
        return str(await self.conn.execute(pg(sql), *args))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self.conn.fetch(pg(sql), *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchrow(pg(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.conn.executemany(pg(sql), rows)


class PostgresStore(SqlReads):
    """:class:`axis.store.base.Store` on PostgreSQL (``postgresql://…``)."""

    single_node = False  # other workers may share the database

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._observers: list[Callable[[LogEntry], None]] = []
        self._snapshot: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            "axis_pg_snapshot", default=None
        )

    def observe(self, callback: Callable[[LogEntry], None]) -> None:
        """Call ``callback`` with every log entry once its transaction has committed."""
        self._observers.append(callback)

    def _committed(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            counters.log_line(entry)
            for observer in self._observers:
                observer(entry)

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

    async def _tx(self, fn: Callable[[PgTx], Awaitable[T]], log: bool = True) -> T:
        """Run ``fn`` in one committed transaction; with ``log`` (it may append to the log)
        under the write lock. Database errors leave as Unavailable; ours as they are, with
        the work of ``fn`` rolled back."""
        tx: PgTx | None = None
        try:
            async with self._p.acquire() as conn:
                async with conn.transaction():
                    if log:
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                    tx = PgTx(conn)
                    result = await fn(tx)
        except _DB_ERRORS as exc:
            raise Unavailable(f"database write failed: {exc}") from exc
        self._committed(tx.appended)
        return result

    async def _append(
        self,
        tx: PgTx,
        at: datetime,
        event: str,
        organ_id: str | None = None,
        package_id: str | None = None,
        detail: str | None = None,
        sha256: str | None = None,
    ) -> LogEntry:
        """Append one entry to the chain (the write lock serializes the head)."""
        head = await tx.fetchrow(LOG_HEAD)
        seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
        entry = link(prev, seq + 1, ts(at), event, organ_id, package_id, detail, sha256)
        await tx.execute(LOG_INSERT, *log_values(entry))
        tx.appended.append(entry)
        return entry

    @staticmethod
    async def _bump(tx: PgTx, bumps: list[counters.Bump]) -> None:
        await tx.executemany(UPSERT_DAILY, bumps)

    # -- agencies ---------------------------------------------------------------------------

    async def add_agency(self, agency: Agency) -> None:
        async def add(tx: PgTx) -> None:
            try:
                async with tx.conn.transaction():  # a savepoint: the conflict is ours to name
                    await tx.execute(
                        f"INSERT INTO agencies ({AGENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        agency.organ_id, agency.name, agency.cert_pem, agency.fingerprint,
                        agency.endpoint, int(agency.active), ts(agency.registered_at),
                    )  # fmt: skip
            except asyncpg.UniqueViolationError as exc:
                raise DuplicateConflict(
                    f"agency {agency.organ_id} or its certificate is already registered"
                ) from exc
            await self._append(
                tx,
                agency.registered_at,
                LogEvent.AGENCY_REGISTERED,
                organ_id=agency.organ_id,
                detail=f"{agency.name}; certificate sha256 {agency.fingerprint}",
            )

        await self._tx(add)

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        async def set_active(tx: PgTx) -> bool:
            status = await tx.execute(
                "UPDATE agencies SET active = ? WHERE organ_id = ? AND active != ?",
                int(active), organ_id, int(active),
            )  # fmt: skip
            if _count(status) == 1:
                event = LogEvent.AGENCY_REGISTERED if active else LogEvent.AGENCY_REVOKED
                detail = "reactivated" if active else None
                await self._append(tx, datetime.now(UTC), event, organ_id, None, detail)
                return True
            found = await tx.fetchrow("SELECT 1 FROM agencies WHERE organ_id = ?", organ_id)
            return found is not None

        return await self._tx(set_active)

    # -- packages ---------------------------------------------------------------------------

    async def insert_package(self, p: NewPackage) -> tuple[PackageRecord, bool]:
        return await self._tx(lambda tx: self._insert_package(tx, p))

    async def _insert_package(self, tx: PgTx, p: NewPackage) -> tuple[PackageRecord, bool]:
        rows = await tx.fetch(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND idempotency_key = ?",
            p.sender, p.idempotency_key,
        )  # fmt: skip
        if rows:
            first = package_row(tuple(rows[0]))
            if first.sha256 != p.sha256:
                raise DuplicateConflict(
                    f"{p.document_id!r} was already sent by {p.sender} with other content"
                    f" (package {first.id})"
                )
            return first, False
        seq = await self._insert_rows(tx, p)
        record = PackageRecord(
            p.id, seq, p.kind, p.sender, p.document_id, p.business_type, p.sha256, p.subject,
            p.received_at, p.answer,
        )  # fmt: skip
        return record, True

    async def _insert_rows(self, tx: PgTx, p: NewPackage) -> int:
        row = await tx.fetchrow(
            "INSERT INTO packages (id, kind, sender, document_id, idempotency_key, business_type,"
            " sha256, subject, received_at, answer, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING seq",
            p.id, p.kind, p.sender, p.document_id, p.idempotency_key, p.business_type,
            p.sha256, p.subject, ts(p.received_at), p.answer, p.body,
        )  # fmt: skip
        seq = int(row[0])
        now = ts(p.received_at)
        pushed = set(p.push_recipients)
        await tx.executemany(
            "INSERT INTO deliveries (package_id, recipient, seq, kind, received_at, state,"
            " updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (p.id, r, seq, p.kind, now, DeliveryState.QUEUED.value, now,
                 now if r in pushed else None)
                for r in p.recipients
            ],
        )  # fmt: skip
        await self._append(
            tx,
            p.received_at,
            LogEvent.RECEIVED,
            p.received_by or None,
            p.id,
            received_detail(p.sender, p.recipients),
            p.sha256,
        )
        if p.kind == "edoc":
            await self._bump(tx, counters.new_edoc(now, p.sender, p.recipients))
        else:
            await self._bump(tx, [counters.one(now, Metric.STATUSES)])
        if p.status_update is not None:
            await self._record_status(tx, p)
        if p.recall_of is not None:
            await self._recall(tx, p.recall_of, p.received_at)
        return seq

    async def _record_status(self, tx: PgTx, p: NewPackage) -> None:
        u = p.status_update
        assert u is not None
        at = ts(p.received_at)
        await tx.execute(
            "UPDATE deliveries SET status_code = ?, updated_at = ?"
            " WHERE package_id = ? AND recipient = ?",
            u.code, at, u.package_id, u.recipient,
        )  # fmt: skip
        await self._bump(tx, [counters.one(at, Metric.STATUS_CODE, u.code)])
        await self._append(tx, p.received_at, LogEvent.STATUS, u.recipient, u.package_id, u.code)
        if u.code == "01":  # "đã đến": the recipient has it, which is what an ack says
            await self._move(
                tx, u.package_id, u.recipient, DeliveryEvent.ACKED, p.received_at, "status 01"
            )

    async def _recall(self, tx: PgTx, package_id: str, at: datetime) -> None:
        rows = await tx.fetch(
            "SELECT recipient FROM deliveries WHERE package_id = ? AND state IN (?, ?)"
            " ORDER BY recipient",
            package_id, DeliveryState.QUEUED.value, DeliveryState.FAILED.value,
        )  # fmt: skip
        for (recipient,) in rows:
            await self._move(tx, package_id, recipient, DeliveryEvent.RECALLED, at)

    async def _move(
        self,
        tx: PgTx,
        package_id: str,
        recipient: str,
        event: DeliveryEvent,
        at: datetime,
        detail: str | None = None,
    ) -> Delivery | None:
        """Inside a transaction: apply one lifecycle event; a real change is logged and
        counted."""
        row = await tx.fetchrow(
            f"SELECT {DELIVERY_COLUMNS}, kind, received_at FROM deliveries"
            " WHERE package_id = ? AND recipient = ? FOR UPDATE",
            package_id, recipient,
        )  # fmt: skip
        if row is None:
            return None
        values = tuple(row)
        current = delivery_row(values[:-2])
        kind, received_at = values[-2:]
        state = next_state(current.state, event)
        if state == current.state:  # a repeat: nothing changes, not even updated_at
            return current
        # Every state but queued ends the pushing (fetched, pushed, given up, recalled, acked).
        await tx.execute(
            "UPDATE deliveries SET state = ?, updated_at = ?, next_attempt_at = NULL"
            " WHERE package_id = ? AND recipient = ?",
            state.value, ts(at), package_id, recipient,
        )  # fmt: skip
        await self._append(tx, at, state.value, recipient, package_id, detail or event.value)
        if kind == "edoc":
            await self._bump(tx, counters.move(received_at, recipient, current.state, state, at))
        return replace(current, state=state, updated_at=at)

    async def apply_event(
        self, package_id: str, recipient: str, event: DeliveryEvent, at: datetime
    ) -> Delivery | None:
        return await self._tx(lambda tx: self._move(tx, package_id, recipient, event, at))

    # -- push delivery ----------------------------------------------------------------------

    async def claim_pushes(
        self,
        owner: str,
        now: datetime,
        lease_s: float,
        limit: int,
        busy: tuple[str, ...] = (),
        per_recipient: int = 1_000_000,
    ) -> list[PushJob]:
        until = now + timedelta(seconds=lease_s)
        skip = f" AND recipient NOT IN ({', '.join('?' for _ in busy)})" if busy else ""

        async def claim(tx: PgTx) -> list[Any]:
            # At most per_recipient pushes per agency in flight across every worker (its live
            # leases count), oldest due first (a window in the CTE, which locks nothing); only
            # the rows taken are locked, FOR UPDATE SKIP
            # LOCKED: another worker's claim in flight skips them and fills its LIMIT with
            # the next ones. A row leased meanwhile fails the re-checked WHERE.
            rows = await tx.fetch(
                "WITH leased AS (SELECT recipient, count(*) AS n FROM deliveries"
                " WHERE lease_owner IS NOT NULL AND lease_until >= ? GROUP BY recipient),"
                " due AS (SELECT package_id, recipient, next_attempt_at, ROW_NUMBER() OVER"
                " (PARTITION BY recipient ORDER BY next_attempt_at) AS nth FROM deliveries"
                " WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
                " AND state = ? AND (lease_until IS NULL OR lease_until < ?)"
                f"{skip})"
                " SELECT d.package_id, d.recipient, d.attempts, d.received_at"
                " FROM deliveries d JOIN due"
                " ON due.package_id = d.package_id AND due.recipient = d.recipient"
                " LEFT JOIN leased ON leased.recipient = d.recipient"
                " WHERE due.nth + coalesce(leased.n, 0) <= ? AND d.state = ?"
                " AND (d.lease_until IS NULL OR d.lease_until < ?)"
                " ORDER BY due.next_attempt_at LIMIT ? FOR UPDATE OF d SKIP LOCKED",
                ts(now), ts(now), DeliveryState.QUEUED.value, ts(now), *busy, per_recipient,
                DeliveryState.QUEUED.value, ts(now), limit,
            )  # fmt: skip
            taken = [tuple(row) for row in rows]
            await tx.executemany(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
                " WHERE package_id = ? AND recipient = ?",
                [(owner, ts(until), pid, recipient) for pid, recipient, _, _ in taken],
            )
            return taken

        rows = await self._tx(claim, log=False)
        return [
            PushJob(pid, recipient, attempts, datetime.fromisoformat(received), until)
            for pid, recipient, attempts, received in rows
        ]

    async def release_leases(self, owner: str) -> None:
        async def release(tx: PgTx) -> None:
            await tx.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = ?",
                owner,
            )

        await self._tx(release, log=False)

    async def release_all_leases(self) -> int:
        async def release(tx: PgTx) -> int:
            return _count(
                await tx.execute(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                    " WHERE lease_owner IS NOT NULL"
                )
            )

        return await self._tx(release, log=False)

    async def push_delivered(self, job: PushJob, at: datetime) -> Delivery | None:
        async def delivered(tx: PgTx) -> Delivery | None:
            delivery = await self._move(
                tx, job.package_id, job.recipient, DeliveryEvent.PUSHED, at, "push"
            )
            await tx.execute(
                "UPDATE deliveries SET next_attempt_at = NULL, lease_owner = NULL,"
                " lease_until = NULL WHERE package_id = ? AND recipient = ?",
                job.package_id, job.recipient,
            )  # fmt: skip
            return delivery

        return await self._tx(delivered)

    async def push_failed(
        self, job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        async def failed(tx: PgTx) -> None:
            status = await tx.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE package_id = ? AND recipient = ? AND lease_owner = ?",
                error[:500], None if retry_at is None else ts(retry_at), job.package_id,
                job.recipient, owner,
            )  # fmt: skip
            if _count(status) == 1 and retry_at is None:
                await self._move(
                    tx, job.package_id, job.recipient, DeliveryEvent.GAVE_UP, at, error[:500]
                )

        await self._tx(failed)

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        async def add(tx: PgTx) -> None:
            await tx.execute(
                "INSERT INTO checkpoints (seq, head, at, signature) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (seq) DO NOTHING",
                checkpoint.seq, checkpoint.head, checkpoint.at, checkpoint.signature,
            )  # fmt: skip

        await self._tx(add, log=False)
