"""The embedded store: one SQLite file in WAL mode.

One writer connection and one reader connection, each on its own thread
(:mod:`axis.store.sqlite_thread`), and a third, read-only, on the event loop for the point
lookups of each request (:mod:`axis.store.sql_reads`). A write is one function run on the
writer's thread inside a transaction, and the writer commits the transactions that queue up
behind each other together (group commit); WAL lets the readers run beside it.
``synchronous=FULL`` makes every commit durable before the hub answers 201. Every write appends
its log entry and updates the statistics counters in the same transaction
(:mod:`axis.store.sqlite_ledger`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from axis.core.lifecycle import DeliveryEvent, DeliveryState, next_state
from axis.core.logchain import Checkpoint, LogEntry, LogEvent, received_detail
from axis.core.stats import Metric
from axis.errors import DuplicateConflict, Unavailable
from axis.store import counters
from axis.store import sqlite_ledger as ledger
from axis.store.base import Agency, Delivery, NewPackage, PackageRecord, PushJob
from axis.store.migrations import migrate_sqlite
from axis.store.rows import (
    AGENCY_COLUMNS,
    DELIVERY_COLUMNS,
    PACKAGE_COLUMNS,
    delivery_row,
    dt,
    package_row,
    ts,
)
from axis.store.sql_reads import SqlReads
from axis.store.sqlite_thread import GroupWriter, SqliteThread, WriteTx

T = TypeVar("T")


def _setup_writer(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    migrate_sqlite(conn)


def _setup_reader(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout=10000")


class SqliteStore(SqlReads):
    """:class:`axis.store.base.Store` on one SQLite file."""

    single_node = True  # one hub process (the serve lock) owns the file

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: GroupWriter | None = None
        self._reader: SqliteThread | None = None
        self._inline: sqlite3.Connection | None = None
        self._observers: list[Callable[[LogEntry], None]] = []

    def observe(self, callback: Callable[[LogEntry], None]) -> None:
        """Call ``callback`` with every log entry once its transaction has committed."""
        self._observers.append(callback)

    def _committed(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            counters.log_line(entry)
            for observer in self._observers:
                observer(entry)

    @staticmethod
    def _append(tx: WriteTx, *args: Any, **kwargs: Any) -> LogEntry:
        entry = ledger.append(tx.conn, *args, **kwargs)
        tx.appended.append(entry)  # told to the observers once the transaction commits
        return entry

    async def open(self) -> None:
        writer = GroupWriter(self.path, _setup_writer, self._committed)
        reader = SqliteThread(self.path, _setup_reader, "axis-sqlite-reader")
        try:
            await writer.start()  # first: it creates the schema
            await reader.start()
            inline = sqlite3.connect(self.path, isolation_level=None)
            inline.execute("PRAGMA query_only=1")
            # WAL readers wait only in rare recovery cases; never hold the loop long for one.
            inline.execute("PRAGMA busy_timeout=1000")
        except (Unavailable, sqlite3.Error) as exc:
            await writer.stop()
            await reader.stop()
            raise Unavailable(f"cannot open the database {self.path}: {exc}") from exc
        self._writer, self._reader, self._inline = writer, reader, inline

    async def close(self) -> None:
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
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

    @property
    def commit_groups(self) -> tuple[int, int]:
        """(commits, transactions in them) since the store opened: how well writes group."""
        w = self._writer
        return (w.groups, w.transactions) if w else (0, 0)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read transaction on the reader: WAL keeps its view fixed until the block ends."""
        await self._read("BEGIN")
        try:
            yield
        finally:
            await self._read("COMMIT")

    async def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return await self._r.call(lambda conn: conn.execute(sql, args).fetchall())

    async def _lookup(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        if self._inline is None:
            raise Unavailable("the store is not open")
        try:
            return self._inline.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"database read failed: {exc}") from exc

    async def _tx(self, fn: Callable[[WriteTx], T]) -> T:
        """Run ``fn`` in one committed write transaction (grouped with others).

        Database errors leave as Unavailable; errors of ours (DuplicateConflict,
        InvalidTransition) as they are, with the work of ``fn`` rolled back.
        """
        return await self._w.transact(fn)

    # -- agencies ---------------------------------------------------------------------------

    async def add_agency(self, agency: Agency) -> None:
        def add(tx: WriteTx) -> None:
            try:
                tx.conn.execute(
                    f"INSERT INTO agencies ({AGENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        agency.organ_id,
                        agency.name,
                        agency.cert_pem,
                        agency.fingerprint,
                        agency.endpoint,
                        int(agency.active),
                        ts(agency.registered_at),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateConflict(
                    f"agency {agency.organ_id} or its certificate is already registered"
                ) from exc
            self._append(
                tx,
                agency.registered_at,
                LogEvent.AGENCY_REGISTERED,
                organ_id=agency.organ_id,
                detail=f"{agency.name}; certificate sha256 {agency.fingerprint}",
            )

        await self._tx(add)

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        def set_active(tx: WriteTx) -> bool:
            cur = tx.conn.execute(
                "UPDATE agencies SET active = ? WHERE organ_id = ? AND active != ?",
                (int(active), organ_id, int(active)),
            )
            if cur.rowcount == 1:
                event = LogEvent.AGENCY_REGISTERED if active else LogEvent.AGENCY_REVOKED
                detail = "reactivated" if active else None
                self._append(tx, datetime.now(UTC), event, organ_id, None, detail)
                return True
            found = tx.conn.execute("SELECT 1 FROM agencies WHERE organ_id = ?", (organ_id,))
            return found.fetchone() is not None

        return await self._tx(set_active)

    # -- packages ---------------------------------------------------------------------------

    async def insert_package(self, p: NewPackage) -> tuple[PackageRecord, bool]:
        return await self._tx(lambda tx: self._insert_package(tx, p))

    def _insert_package(self, tx: WriteTx, p: NewPackage) -> tuple[PackageRecord, bool]:
        rows = tx.conn.execute(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND idempotency_key = ?",
            (p.sender, p.idempotency_key),
        ).fetchall()
        if rows:
            first = package_row(rows[0])
            if first.sha256 != p.sha256:
                raise DuplicateConflict(
                    f"{p.document_id!r} was already sent by {p.sender} with other content"
                    f" (package {first.id})"
                )
            return first, False
        seq = self._insert_rows(tx, p)
        record = PackageRecord(
            p.id, seq, p.kind, p.sender, p.document_id, p.business_type, p.sha256, p.subject,
            p.received_at, p.answer,
        )  # fmt: skip
        return record, True

    def _insert_rows(self, tx: WriteTx, p: NewPackage) -> int:
        w = tx.conn
        cur = w.execute(
            "INSERT INTO packages (id, kind, sender, document_id, idempotency_key, business_type,"
            " sha256, subject, received_at, answer, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.id, p.kind, p.sender, p.document_id, p.idempotency_key, p.business_type,
                p.sha256, p.subject, ts(p.received_at), p.answer, p.body,
            ),
        )  # fmt: skip
        seq = cur.lastrowid
        assert seq is not None
        now = ts(p.received_at)
        pushed = set(p.push_recipients)
        w.executemany(
            "INSERT INTO deliveries (package_id, recipient, seq, kind, received_at, state,"
            " updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (p.id, r, seq, p.kind, now, DeliveryState.QUEUED.value, now,
                 now if r in pushed else None)
                for r in p.recipients
            ],
        )  # fmt: skip
        self._append(
            tx,
            p.received_at,
            LogEvent.RECEIVED,
            p.received_by or None,
            p.id,
            received_detail(p.sender, p.recipients),
            p.sha256,
        )
        if p.kind == "edoc":
            ledger.bump_all(w, counters.new_edoc(now, p.sender, p.recipients))
        else:
            ledger.bump_all(w, [counters.one(now, Metric.STATUSES)])
        if p.status_update is not None:
            self._record_status(tx, p)
        if p.recall_of is not None:
            self._recall(tx, p.recall_of, p.received_at)
        return seq

    def _record_status(self, tx: WriteTx, p: NewPackage) -> None:
        u = p.status_update
        assert u is not None
        tx.conn.execute(
            "UPDATE deliveries SET status_code = ?, updated_at = ?"
            " WHERE package_id = ? AND recipient = ?",
            (u.code, ts(p.received_at), u.package_id, u.recipient),
        )
        ledger.bump_all(tx.conn, [counters.one(ts(p.received_at), Metric.STATUS_CODE, u.code)])
        self._append(tx, p.received_at, LogEvent.STATUS, u.recipient, u.package_id, u.code)
        if u.code == "01":  # "đã đến": the recipient has it, which is what an ack says
            self._move(
                tx, u.package_id, u.recipient, DeliveryEvent.ACKED, p.received_at, "status 01"
            )

    def _recall(self, tx: WriteTx, package_id: str, at: datetime) -> None:
        """Recall the deliveries of ``package_id`` that no recipient has fetched yet."""
        rows = tx.conn.execute(
            "SELECT recipient FROM deliveries WHERE package_id = ? AND state IN (?, ?)",
            (package_id, DeliveryState.QUEUED.value, DeliveryState.FAILED.value),
        ).fetchall()
        for (recipient,) in rows:
            self._move(tx, package_id, recipient, DeliveryEvent.RECALLED, at)

    def _move(
        self,
        tx: WriteTx,
        package_id: str,
        recipient: str,
        event: DeliveryEvent,
        at: datetime,
        detail: str | None = None,
    ) -> Delivery | None:
        """Inside a transaction: apply one lifecycle event; a real change is logged and
        counted."""
        row = tx.conn.execute(
            f"SELECT {DELIVERY_COLUMNS}, kind, received_at FROM deliveries"
            " WHERE package_id = ? AND recipient = ?",
            (package_id, recipient),
        ).fetchone()
        if row is None:
            return None
        current = delivery_row(row[:-2])
        kind, received_at = row[-2:]
        state = next_state(current.state, event)
        if state == current.state:  # a repeat: nothing changes, not even updated_at
            return current
        # Every state but queued ends the pushing (fetched, pushed, given up, recalled, acked).
        tx.conn.execute(
            "UPDATE deliveries SET state = ?, updated_at = ?, next_attempt_at = NULL"
            " WHERE package_id = ? AND recipient = ?",
            (state.value, ts(at), package_id, recipient),
        )
        self._append(tx, at, state.value, recipient, package_id, detail or event.value)
        if kind == "edoc":
            ledger.bump_all(
                tx.conn, counters.move(received_at, recipient, current.state, state, at)
            )
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
        skip = f" AND d.recipient NOT IN ({', '.join('?' for _ in busy)})" if busy else ""

        def claim(tx: WriteTx) -> list[Any]:
            # At most per_recipient due deliveries per agency in one claim, oldest due first,
            # so a backlog for one dead endpoint cannot fill every slot.
            rows = tx.conn.execute(
                "SELECT package_id, recipient, attempts, received_at FROM ("
                " SELECT d.package_id, d.recipient, d.attempts, d.received_at,"
                " d.next_attempt_at, ROW_NUMBER() OVER"
                " (PARTITION BY d.recipient ORDER BY d.next_attempt_at) AS nth"
                " FROM deliveries d"
                " WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?"
                " AND d.state = ? AND (d.lease_until IS NULL OR d.lease_until < ?)"
                f"{skip}) WHERE nth <= ? ORDER BY next_attempt_at LIMIT ?",
                (ts(now), DeliveryState.QUEUED.value, ts(now), *busy, per_recipient, limit),
            ).fetchall()
            tx.conn.executemany(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
                " WHERE package_id = ? AND recipient = ?",
                [(owner, ts(until), pid, recipient) for pid, recipient, _, _ in rows],
            )
            return rows

        rows = await self._tx(claim)
        return [
            PushJob(pid, recipient, attempts, dt(received), until)
            for pid, recipient, attempts, received in rows
        ]

    async def release_leases(self, owner: str) -> None:
        await self._tx(
            lambda tx: tx.conn.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = ?",
                (owner,),
            )
        )

    async def release_all_leases(self) -> int:
        def release(tx: WriteTx) -> int:
            return tx.conn.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner IS NOT NULL"
            ).rowcount

        return await self._tx(release)

    async def push_delivered(self, job: PushJob, at: datetime) -> Delivery | None:
        def delivered(tx: WriteTx) -> Delivery | None:
            delivery = self._move(
                tx, job.package_id, job.recipient, DeliveryEvent.PUSHED, at, "push"
            )
            tx.conn.execute(
                "UPDATE deliveries SET next_attempt_at = NULL, lease_owner = NULL,"
                " lease_until = NULL WHERE package_id = ? AND recipient = ?",
                (job.package_id, job.recipient),
            )
            return delivery

        return await self._tx(delivered)

    async def push_failed(
        self, job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        def failed(tx: WriteTx) -> None:
            cur = tx.conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE package_id = ? AND recipient = ? AND lease_owner = ?",
                (
                    error[:500],
                    None if retry_at is None else ts(retry_at),
                    job.package_id,
                    job.recipient,
                    owner,
                ),
            )
            if cur.rowcount == 1 and retry_at is None:
                self._move(
                    tx, job.package_id, job.recipient, DeliveryEvent.GAVE_UP, at, error[:500]
                )

        await self._tx(failed)

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._tx(
            lambda tx: tx.conn.execute(
                "INSERT OR IGNORE INTO checkpoints (seq, head, at, signature) VALUES (?, ?, ?, ?)",
                (checkpoint.seq, checkpoint.head, checkpoint.at, checkpoint.signature),
            )
        )
