"""Rows and records: the columns every store selects, how timestamps are stored, and the
conversions from a row (an sqlite3 tuple or an asyncpg Record) to the store's records.

Both stores keep timestamps as ISO 8601 text in UTC with microseconds, which sorts as time
does, so the same conversions serve both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from axis.core.edxml_model import BusinessDocType, PackageKind
from axis.core.lifecycle import PENDING, DeliveryState
from axis.core.logchain import Checkpoint, LogEntry
from axis.core.routing import Stored
from axis.store.base import Agency, AgencyCode, Delivery, PackageRecord, System

AGENCY_COLUMNS = "organ_id, name, cert_pem, fingerprint, endpoint, active, registered_at, system_id"
SYSTEM_COLUMNS = "system_id, name, secret, active, added_at"
CODE_COLUMNS = "code, organ_id, added_at, successor, closed_at"
PACKAGE_COLUMNS = (
    "id, seq, kind, sender, document_id, business_type, sha256, subject, received_at, answer, notes"
)
DELIVERY_COLUMNS = (
    "package_id, recipient, state, status_code, updated_at, attempts, last_error, mark"
)
LOG_COLUMNS = "seq, at, event, organ_id, package_id, detail, sha256, prev, hash, cert_sha256"

# The statements the writes share (``?`` placeholders; PostgreSQL's store numbers them).
LOG_HEAD = "SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1"
LOG_INSERT = f"INSERT INTO log ({LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# daily.n, not n: PostgreSQL needs the target's column named (SQLite takes either).
UPSERT_DAILY = (
    "INSERT INTO daily (day, metric, key, n) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (day, metric, key) DO UPDATE SET n = daily.n + excluded.n"
)
PENDING_STATES = tuple(sorted(PENDING))


def ts(value: datetime) -> str:
    """A timestamp as stored: UTC, microseconds, ISO 8601 (sorts as text)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def day_of(stored: str) -> str:
    """The UTC day of a stored timestamp."""
    return stored[:10]


def blob(value: object) -> bytes:
    """A BLOB column's bytes (a row edited behind the store's back may hold TEXT)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def package_row(row: Iterable[Any]) -> PackageRecord:
    pid, seq, kind, sender, doc_id, btype, sha, subject, received, answer, notes = row
    return PackageRecord(
        pid, seq, PackageKind(kind), sender, doc_id, BusinessDocType(btype), sha, subject,
        dt(received), answer, notes,
    )  # fmt: skip


def delivery_row(row: Iterable[Any]) -> Delivery:
    package_id, recipient, state, code, updated, attempts, error, mark = row
    return Delivery(
        package_id, recipient, DeliveryState(state), code, dt(updated), attempts, error, mark
    )


def stored_rows(rows: Iterable[Any]) -> tuple[Stored, ...]:
    """Rows of (edoc id, BussinessDocType, recipient, status code, state), an edoc's rows
    together (a LEFT JOIN: an edoc without deliveries has one row of NULLs), as routing's
    :class:`Stored` edocs in the rows' order."""
    stored = []
    for package_id, group in groupby(rows, key=itemgetter(0)):
        edoc = list(group)
        deliveries = [(r, code, state) for _, _, r, code, state in edoc if r is not None]
        stored.append(
            Stored(
                package_id,
                BusinessDocType(edoc[0][1]),
                {recipient: code for recipient, code, _ in deliveries},
                frozenset(r for r, _, state in deliveries if state == DeliveryState.RECALLED),
            )
        )
    return tuple(stored)


def agency_row(row: Iterable[Any]) -> Agency:
    organ_id, name, cert_pem, fingerprint, endpoint, active, registered, system_id = row
    return Agency(
        organ_id=organ_id,
        name=name,
        cert_pem=blob(cert_pem),
        fingerprint=fingerprint,
        registered_at=dt(registered),
        active=bool(active),
        endpoint=endpoint,
        system_id=system_id,
    )


def system_row(row: Iterable[Any]) -> System:
    system_id, name, secret, active, added = row
    return System(system_id, name, blob(secret), dt(added), bool(active))


def code_row(row: Iterable[Any]) -> AgencyCode:
    code, organ_id, added, successor, closed = row
    return AgencyCode(code, organ_id, dt(added), successor, dt(closed) if closed else None)


def log_values(entry: LogEntry) -> tuple[Any, ...]:
    """An entry as LOG_INSERT's parameters."""
    return (
        entry.seq, entry.at, entry.event, entry.organ_id, entry.package_id, entry.detail,
        entry.sha256, entry.prev, entry.hash, entry.cert_sha256,
    )  # fmt: skip


def log_row(row: Iterable[Any]) -> LogEntry:
    seq, at, event, organ_id, package_id, detail, sha256, prev, hash_, cert_sha256 = row
    return LogEntry(seq, at, event, organ_id, package_id, detail, sha256, prev, hash_, cert_sha256)


def marks(values: Iterable[object]) -> str:
    """``?, ?, ?``: one placeholder for each of ``values``."""
    return ", ".join("?" for _ in values)


def checkpoint_row(row: Iterable[Any]) -> Checkpoint:
    seq, head, at, signature = row
    return Checkpoint(seq, head, at, blob(signature))
