"""The embedded store: one SQLite file in WAL mode.

One writer connection, guarded by a lock so that the statements of one transaction never
interleave with another coroutine's; one reader connection, which WAL lets run beside the
writer. ``synchronous=FULL`` makes every commit durable before the hub answers 201. Every write
appends its log entry and updates the statistics counters in the same transaction
(:mod:`axis.store.sqlite_ledger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from axis.core.lifecycle import DeliveryEvent, DeliveryState, next_state
from axis.core.logchain import Checkpoint, LogEntry, LogEvent, received_detail
from axis.core.stats import Metric
from axis.errors import DuplicateConflict, Unavailable
from axis.store import sqlite_ledger as ledger
from axis.store.base import Agency, Delivery, NewPackage, PackageRecord, PushJob
from axis.store.sqlite_reads import SqliteReads
from axis.store.sqlite_schema import (
    AGENCY_COLUMNS,
    DELIVERY_COLUMNS,
    PACKAGE_COLUMNS,
    SCHEMA,
    delivery_row,
    dt,
    package_row,
    ts,
)


class SqliteStore(SqliteReads):
    """:class:`axis.store.base.Store` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._observers: list[Callable[[LogEntry], None]] = []
        self._appended: list[LogEntry] = []

    def observe(self, callback: Callable[[LogEntry], None]) -> None:
        """Call ``callback`` with every log entry once its transaction has committed."""
        self._observers.append(callback)

    async def _append(self, w: aiosqlite.Connection, *args: Any, **kwargs: Any) -> LogEntry:
        entry = await ledger.append(w, *args, **kwargs)
        self._appended.append(entry)  # told to the observers once the transaction commits
        return entry

    async def open(self) -> None:
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._writer.execute("PRAGMA synchronous=FULL")
            await self._writer.execute("PRAGMA busy_timeout=10000")
            await self._writer.executescript(SCHEMA)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the database {self.path}: {exc}") from exc

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def ping(self) -> None:
        await self._read("SELECT 1")
        self._w  # noqa: B018 - raises Unavailable when the writer is closed

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise Unavailable("the store is not open")
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
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

    async def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return list(await self._r.execute_fetchall(sql, args))
        except sqlite3.Error as exc:
            raise Unavailable(f"database read failed: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer, under the lock.

        Commits when the block ends; rolls back on any exception, cancellation included (an
        open BEGIN on the shared writer would swallow the next writes). Database errors
        leave as Unavailable; errors of ours (DuplicateConflict, InvalidTransition) as they are.
        """
        async with self._lock:
            w = self._w
            self._appended = []
            try:
                await w.execute("BEGIN IMMEDIATE")
                yield w
                await w.execute("COMMIT")
                committed, self._appended = self._appended, []
                for entry in committed:
                    ledger.log_line(entry)
                    for observer in self._observers:
                        observer(entry)
            except sqlite3.Error as exc:
                await asyncio.shield(self._rollback())
                raise Unavailable(f"database write failed: {exc}") from exc
            except BaseException:
                await asyncio.shield(self._rollback())
                raise

    async def _rollback(self) -> None:
        try:
            await self._w.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open

    # -- agencies ---------------------------------------------------------------------------

    async def add_agency(self, agency: Agency) -> None:
        async with self._tx() as w:
            try:
                await w.execute(
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
            await self._append(
                w,
                agency.registered_at,
                LogEvent.AGENCY_REGISTERED,
                organ_id=agency.organ_id,
                detail=f"{agency.name}; certificate sha256 {agency.fingerprint}",
            )

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        async with self._tx() as w:
            cur = await w.execute(
                "UPDATE agencies SET active = ? WHERE organ_id = ? AND active != ?",
                (int(active), organ_id, int(active)),
            )
            if cur.rowcount == 1:
                event = LogEvent.AGENCY_REGISTERED if active else LogEvent.AGENCY_REVOKED
                detail = "reactivated" if active else None
                await self._append(w, datetime.now(UTC), event, organ_id, None, detail)
                return True
            found = await w.execute_fetchall(
                "SELECT 1 FROM agencies WHERE organ_id = ?", (organ_id,)
            )
            return bool(list(found))

    # -- packages ---------------------------------------------------------------------------

    async def insert_package(self, p: NewPackage) -> tuple[PackageRecord, bool]:
        async with self._tx() as w:
            rows = list(
                await w.execute_fetchall(
                    f"SELECT {PACKAGE_COLUMNS} FROM packages"
                    " WHERE sender = ? AND idempotency_key = ?",
                    (p.sender, p.idempotency_key),
                )
            )
            if rows:
                first = package_row(rows[0])
                if first.sha256 != p.sha256:
                    raise DuplicateConflict(
                        f"{p.document_id!r} was already sent by {p.sender} with other content"
                        f" (package {first.id})"
                    )
                return first, False
            seq = await self._insert_rows(w, p)
        record = PackageRecord(
            p.id, seq, p.kind, p.sender, p.document_id, p.business_type, p.sha256, p.subject,
            p.received_at, p.answer,
        )  # fmt: skip
        return record, True

    async def _insert_rows(self, w: aiosqlite.Connection, p: NewPackage) -> int:
        cur = await w.execute(
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
        await w.executemany(
            "INSERT INTO deliveries (package_id, recipient, seq, kind, received_at, state,"
            " updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (p.id, r, seq, p.kind, now, DeliveryState.QUEUED.value, now,
                 now if r in pushed else None)
                for r in p.recipients
            ],
        )  # fmt: skip
        await self._append(
            w,
            p.received_at,
            LogEvent.RECEIVED,
            p.received_by or None,
            p.id,
            received_detail(p.sender, p.recipients),
            p.sha256,
        )
        if p.kind == "edoc":
            await ledger.count_new_edoc(w, now, p.sender, p.recipients)
        else:
            await ledger.bump(w, now, Metric.STATUSES)
        if p.status_update is not None:
            await self._record_status(w, p)
        if p.recall_of is not None:
            await self._recall(w, p.recall_of, p.received_at)
        return seq

    async def _record_status(self, w: aiosqlite.Connection, p: NewPackage) -> None:
        u = p.status_update
        assert u is not None
        await w.execute(
            "UPDATE deliveries SET status_code = ?, updated_at = ?"
            " WHERE package_id = ? AND recipient = ?",
            (u.code, ts(p.received_at), u.package_id, u.recipient),
        )
        await ledger.bump(w, ts(p.received_at), Metric.STATUS_CODE, u.code)
        await self._append(w, p.received_at, LogEvent.STATUS, u.recipient, u.package_id, u.code)
        if u.code == "01":  # "đã đến": the recipient has it, which is what an ack says
            await self._move(
                w, u.package_id, u.recipient, DeliveryEvent.ACKED, p.received_at, "status 01"
            )

    async def _recall(self, w: aiosqlite.Connection, package_id: str, at: datetime) -> None:
        """Recall the deliveries of ``package_id`` that no recipient has fetched yet."""
        rows = await w.execute_fetchall(
            "SELECT recipient FROM deliveries WHERE package_id = ? AND state IN (?, ?)",
            (package_id, DeliveryState.QUEUED.value, DeliveryState.FAILED.value),
        )
        for (recipient,) in rows:
            await self._move(w, package_id, recipient, DeliveryEvent.RECALLED, at)

    async def _move(
        self,
        w: aiosqlite.Connection,
        package_id: str,
        recipient: str,
        event: DeliveryEvent,
        at: datetime,
        detail: str | None = None,
    ) -> Delivery | None:
        """Inside a transaction: apply one lifecycle event; a real change is logged and
        counted."""
        rows = list(
            await w.execute_fetchall(
                f"SELECT {DELIVERY_COLUMNS}, kind, received_at FROM deliveries"
                " WHERE package_id = ? AND recipient = ?",
                (package_id, recipient),
            )
        )
        if not rows:
            return None
        current = delivery_row(rows[0][:-2])
        kind, received_at = rows[0][-2:]
        state = next_state(current.state, event)
        if state == current.state:  # a repeat: nothing changes, not even updated_at
            return current
        # Every state but queued ends the pushing (fetched, pushed, given up, recalled, acked).
        await w.execute(
            "UPDATE deliveries SET state = ?, updated_at = ?, next_attempt_at = NULL"
            " WHERE package_id = ? AND recipient = ?",
            (state.value, ts(at), package_id, recipient),
        )
        await self._append(w, at, state.value, recipient, package_id, detail or event.value)
        if kind == "edoc":
            await ledger.count_move(w, received_at, recipient, current.state, state, at)
        return replace(current, state=state, updated_at=at)

    async def apply_event(
        self, package_id: str, recipient: str, event: DeliveryEvent, at: datetime
    ) -> Delivery | None:
        async with self._tx() as w:
            return await self._move(w, package_id, recipient, event, at)

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
        async with self._tx() as w:
            # At most per_recipient due deliveries per agency in one claim, oldest due first,
            # so a backlog for one dead endpoint cannot fill every slot.
            rows = list(
                await w.execute_fetchall(
                    "SELECT package_id, recipient, attempts, received_at FROM ("
                    " SELECT d.package_id, d.recipient, d.attempts, d.received_at,"
                    " d.next_attempt_at, ROW_NUMBER() OVER"
                    " (PARTITION BY d.recipient ORDER BY d.next_attempt_at) AS nth"
                    " FROM deliveries d"
                    " WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?"
                    " AND d.state = ? AND (d.lease_until IS NULL OR d.lease_until < ?)"
                    f"{skip}) WHERE nth <= ? ORDER BY next_attempt_at LIMIT ?",
                    (ts(now), DeliveryState.QUEUED.value, ts(now), *busy, per_recipient, limit),
                )
            )
            await w.executemany(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
                " WHERE package_id = ? AND recipient = ?",
                [(owner, ts(until), pid, recipient) for pid, recipient, _, _ in rows],
            )
        return [
            PushJob(pid, recipient, attempts, dt(received), until)
            for pid, recipient, attempts, received in rows
        ]

    async def release_leases(self, owner: str) -> None:
        async with self._tx() as w:
            await w.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = ?",
                (owner,),
            )

    async def push_delivered(self, job: PushJob, at: datetime) -> Delivery | None:
        async with self._tx() as w:
            delivery = await self._move(
                w, job.package_id, job.recipient, DeliveryEvent.PUSHED, at, "push"
            )
            await w.execute(
                "UPDATE deliveries SET next_attempt_at = NULL, lease_owner = NULL,"
                " lease_until = NULL WHERE package_id = ? AND recipient = ?",
                (job.package_id, job.recipient),
            )
            return delivery

    async def push_failed(
        self, job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        async with self._tx() as w:
            cur = await w.execute(
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
                await self._move(
                    w, job.package_id, job.recipient, DeliveryEvent.GAVE_UP, at, error[:500]
                )

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        async with self._tx() as w:
            await w.execute(
                "INSERT OR IGNORE INTO checkpoints (seq, head, at, signature) VALUES (?, ?, ?, ?)",
                (checkpoint.seq, checkpoint.head, checkpoint.at, checkpoint.signature),
            )
