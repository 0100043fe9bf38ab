"""The embedded store: one SQLite file in WAL mode.

One writer connection, guarded by a lock so that the statements of one transaction never
interleave with another coroutine's; one reader connection, which WAL lets run beside the
writer. ``synchronous=FULL`` makes every commit durable before the hub answers 201.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from axis.core.lifecycle import PENDING, DeliveryEvent, DeliveryState, next_state
from axis.errors import DuplicateConflict, Unavailable
from axis.store.base import Agency, Delivery, Hop, NewPackage, PackageRecord, PushJob

SCHEMA = """
CREATE TABLE IF NOT EXISTS agencies (
    organ_id      TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    cert_pem      BLOB NOT NULL,
    fingerprint   TEXT NOT NULL UNIQUE,
    endpoint      TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS packages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    sender          TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    business_type   INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    answer          TEXT NOT NULL,
    body            BLOB NOT NULL,
    UNIQUE (sender, idempotency_key)
);
CREATE INDEX IF NOT EXISTS packages_document ON packages (sender, document_id, business_type);
CREATE TABLE IF NOT EXISTS deliveries (
    package_id      TEXT NOT NULL REFERENCES packages (id),
    recipient       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    state           TEXT NOT NULL,
    status_code     TEXT,
    updated_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,             -- a push is due then (NULL: pull only, or done)
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    PRIMARY KEY (package_id, recipient)
);
CREATE INDEX IF NOT EXISTS deliveries_inbox ON deliveries (recipient, state, seq);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS hops (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id TEXT NOT NULL REFERENCES packages (id),
    organ_id   TEXT NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT,
    at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hops_package ON hops (package_id, seq);
"""
DELIVERY_COLUMNS = "package_id, recipient, state, status_code, updated_at, attempts, last_error"

PACKAGE_COLUMNS = (
    "id, seq, kind, sender, document_id, business_type, sha256, subject, received_at, answer"
)
PENDING_STATES = tuple(sorted(PENDING))


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _package(row: Iterable[Any]) -> PackageRecord:
    pid, seq, kind, sender, doc_id, btype, sha, subject, received, answer = row
    return PackageRecord(pid, seq, kind, sender, doc_id, btype, sha, subject, _dt(received), answer)


def _delivery(row: Iterable[Any]) -> Delivery:
    package_id, recipient, state, code, updated, attempts, error = row
    return Delivery(
        package_id, recipient, DeliveryState(state), code, _dt(updated), attempts, error
    )


def _agency(row: Iterable[Any]) -> Agency:
    organ_id, name, cert_pem, fingerprint, endpoint, active, registered = row
    return Agency(
        organ_id=organ_id,
        name=name,
        cert_pem=bytes(cert_pem),
        fingerprint=fingerprint,
        registered_at=_dt(registered),
        active=bool(active),
        endpoint=endpoint,
    )


AGENCY_COLUMNS = "organ_id, name, cert_pem, fingerprint, endpoint, active, registered_at"


class SqliteStore:
    """:class:`axis.store.base.Store` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

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
            try:
                await w.execute("BEGIN IMMEDIATE")
                yield w
                await w.execute("COMMIT")
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
                        _ts(agency.registered_at),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateConflict(
                    f"agency {agency.organ_id} or its certificate is already registered"
                ) from exc

    async def get_agency(self, organ_id: str) -> Agency | None:
        rows = await self._read(
            f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE organ_id = ?", (organ_id,)
        )
        return _agency(rows[0]) if rows else None

    async def agency_by_fingerprint(self, fingerprint: str) -> Agency | None:
        rows = await self._read(
            f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE fingerprint = ?", (fingerprint,)
        )
        return _agency(rows[0]) if rows else None

    async def list_agencies(self) -> list[Agency]:
        rows = await self._read(f"SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY organ_id")
        return [_agency(r) for r in rows]

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        async with self._tx() as w:
            cur = await w.execute(
                "UPDATE agencies SET active = ? WHERE organ_id = ?", (int(active), organ_id)
            )
            return cur.rowcount == 1

    # -- packages ---------------------------------------------------------------------------

    async def find_by_key(self, sender: str, idempotency_key: str) -> PackageRecord | None:
        rows = await self._read(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND idempotency_key = ?",
            (sender, idempotency_key),
        )
        return _package(rows[0]) if rows else None

    async def find_document(self, sender: str, document_id: str) -> PackageRecord | None:
        rows = await self._read(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND document_id = ?"
            " AND business_type = 0 AND kind = 'edoc'",
            (sender, document_id),
        )
        return _package(rows[0]) if rows else None

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
                first = _package(rows[0])
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

    async def find_edocs(self, sender: str, document_id: str) -> list[PackageRecord]:
        rows = await self._read(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND document_id = ?"
            " AND kind = 'edoc' ORDER BY seq DESC",
            (sender, document_id),
        )
        return [_package(r) for r in rows]

    async def _insert_rows(self, w: aiosqlite.Connection, p: NewPackage) -> int:
        cur = await w.execute(
            "INSERT INTO packages (id, kind, sender, document_id, idempotency_key, business_type,"
            " sha256, subject, received_at, answer, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.id, p.kind, p.sender, p.document_id, p.idempotency_key, p.business_type,
                p.sha256, p.subject, _ts(p.received_at), p.answer, p.body,
            ),
        )  # fmt: skip
        seq = cur.lastrowid
        assert seq is not None
        now = _ts(p.received_at)
        pushed = set(p.push_recipients)
        await w.executemany(
            "INSERT INTO deliveries (package_id, recipient, seq, state, updated_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (p.id, r, seq, DeliveryState.QUEUED.value, now, now if r in pushed else None)
                for r in p.recipients
            ],
        )
        await self._hop(w, p.id, Hop(p.received_by or "hub", "received", p.received_at, p.sender))
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
            (u.code, _ts(p.received_at), u.package_id, u.recipient),
        )
        await self._hop(w, u.package_id, Hop(u.recipient, f"status {u.code}", p.received_at))
        if u.code == "01":  # "đã đến": the recipient has it, which is what an ack says
            await self._move(w, u.package_id, u.recipient, DeliveryEvent.ACKED, p.received_at)

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
        """Inside a transaction: apply one lifecycle event; a real change gets a hop."""
        rows = list(
            await w.execute_fetchall(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id = ? AND recipient = ?",
                (package_id, recipient),
            )
        )
        if not rows:
            return None
        current = _delivery(rows[0])
        state = next_state(current.state, event)
        if state == current.state:  # a repeat: nothing changes, not even updated_at
            return current
        # Every state but queued ends the pushing (fetched, pushed, given up, recalled, acked).
        await w.execute(
            "UPDATE deliveries SET state = ?, updated_at = ?, next_attempt_at = NULL"
            " WHERE package_id = ? AND recipient = ?",
            (state.value, _ts(at), package_id, recipient),
        )
        await self._hop(w, package_id, Hop(recipient, state.value, at, detail or event.value))
        return replace(current, state=state, updated_at=at)

    @staticmethod
    async def _hop(w: aiosqlite.Connection, package_id: str, hop: Hop) -> None:
        await w.execute(
            "INSERT INTO hops (package_id, organ_id, event, detail, at) VALUES (?, ?, ?, ?, ?)",
            (package_id, hop.organ_id, hop.event, hop.detail, _ts(hop.at)),
        )

    async def get_record(self, package_id: str) -> PackageRecord | None:
        rows = await self._read(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE id = ?", (package_id,)
        )
        return _package(rows[0]) if rows else None

    async def get_package(self, package_id: str) -> tuple[PackageRecord, bytes] | None:
        rows = await self._read(
            f"SELECT {PACKAGE_COLUMNS}, body FROM packages WHERE id = ?", (package_id,)
        )
        return (_package(rows[0][:-1]), bytes(rows[0][-1])) if rows else None

    async def deliveries(self, package_id: str) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id = ? ORDER BY recipient",
            (package_id,),
        )
        return [_delivery(r) for r in rows]

    async def inbox(self, recipient: str, after: int, limit: int) -> list[PackageRecord]:
        marks = ", ".join("?" for _ in PENDING_STATES)
        rows = await self._read(
            f"SELECT {', '.join('p.' + c.strip() for c in PACKAGE_COLUMNS.split(','))}"
            " FROM deliveries d JOIN packages p ON p.id = d.package_id"
            f" WHERE d.recipient = ? AND d.state IN ({marks}) AND d.seq > ?"
            " ORDER BY d.seq LIMIT ?",
            (recipient, *(s.value for s in PENDING_STATES), after, limit),
        )
        return [_package(r) for r in rows]

    async def apply_event(
        self, package_id: str, recipient: str, event: DeliveryEvent, at: datetime
    ) -> Delivery | None:
        async with self._tx() as w:
            return await self._move(w, package_id, recipient, event, at)

    async def trace(self, package_id: str) -> list[Hop]:
        rows = await self._read(
            "SELECT organ_id, event, at, detail FROM hops WHERE package_id = ? ORDER BY seq",
            (package_id,),
        )
        return [Hop(organ_id, event, _dt(at), detail) for organ_id, event, at, detail in rows]

    async def deliveries_in(self, state: DeliveryState, limit: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = ?"
            " ORDER BY updated_at DESC LIMIT ?",
            (state.value, limit),
        )
        return [_delivery(r) for r in rows]

    # -- push delivery ----------------------------------------------------------------------

    async def delivery(self, package_id: str, recipient: str) -> Delivery | None:
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id = ? AND recipient = ?",
            (package_id, recipient),
        )
        return _delivery(rows[0]) if rows else None

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
                    " SELECT d.package_id, d.recipient, d.attempts, p.received_at,"
                    " d.next_attempt_at, ROW_NUMBER() OVER"
                    " (PARTITION BY d.recipient ORDER BY d.next_attempt_at) AS nth"
                    " FROM deliveries d JOIN packages p ON p.id = d.package_id"
                    " WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?"
                    " AND d.state = ? AND (d.lease_until IS NULL OR d.lease_until < ?)"
                    f"{skip}) WHERE nth <= ? ORDER BY next_attempt_at LIMIT ?",
                    (_ts(now), DeliveryState.QUEUED.value, _ts(now), *busy, per_recipient, limit),
                )
            )
            await w.executemany(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
                " WHERE package_id = ? AND recipient = ?",
                [(owner, _ts(until), pid, recipient) for pid, recipient, _, _ in rows],
            )
        return [
            PushJob(pid, recipient, attempts, _dt(received), until)
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
                    None if retry_at is None else _ts(retry_at),
                    job.package_id,
                    job.recipient,
                    owner,
                ),
            )
            if cur.rowcount == 1 and retry_at is None:
                await self._move(
                    w, job.package_id, job.recipient, DeliveryEvent.GAVE_UP, at, error[:500]
                )
