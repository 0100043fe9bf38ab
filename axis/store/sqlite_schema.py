"""The SQLite schema and the conversions between its rows and the store's records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from axis.core.lifecycle import PENDING, DeliveryState
from axis.core.logchain import Checkpoint, LogEntry
from axis.store.base import Agency, Delivery, PackageRecord

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
    kind            TEXT NOT NULL,    -- the package's kind: statistics count edoc deliveries
    received_at     TEXT NOT NULL,    -- when the hub took the package (latency, daily counts)
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
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, seq);
CREATE INDEX IF NOT EXISTS deliveries_state_changed ON deliveries (state, updated_at);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
-- Few rows hold a lease at a time: giving them back (on stop, on start) reads only those.
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (lease_owner)
    WHERE lease_owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    organ_id   TEXT,
    package_id TEXT,
    detail     TEXT,
    sha256     TEXT,
    prev       TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_package ON log (package_id, seq) WHERE package_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    seq       INTEGER PRIMARY KEY,
    head      TEXT NOT NULL,
    at        TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS daily (
    day    TEXT NOT NULL,
    metric TEXT NOT NULL,
    key    TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (day, metric, key)
);
"""

AGENCY_COLUMNS = "organ_id, name, cert_pem, fingerprint, endpoint, active, registered_at"
PACKAGE_COLUMNS = (
    "id, seq, kind, sender, document_id, business_type, sha256, subject, received_at, answer"
)
DELIVERY_COLUMNS = "package_id, recipient, state, status_code, updated_at, attempts, last_error"
LOG_COLUMNS = "seq, at, event, organ_id, package_id, detail, sha256, prev, hash"
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
    pid, seq, kind, sender, doc_id, btype, sha, subject, received, answer = row
    return PackageRecord(pid, seq, kind, sender, doc_id, btype, sha, subject, dt(received), answer)


def delivery_row(row: Iterable[Any]) -> Delivery:
    package_id, recipient, state, code, updated, attempts, error = row
    return Delivery(package_id, recipient, DeliveryState(state), code, dt(updated), attempts, error)


def agency_row(row: Iterable[Any]) -> Agency:
    organ_id, name, cert_pem, fingerprint, endpoint, active, registered = row
    return Agency(
        organ_id=organ_id,
        name=name,
        cert_pem=blob(cert_pem),
        fingerprint=fingerprint,
        registered_at=dt(registered),
        active=bool(active),
        endpoint=endpoint,
    )


def log_row(row: Iterable[Any]) -> LogEntry:
    seq, at, event, organ_id, package_id, detail, sha256, prev, hash_ = row
    return LogEntry(seq, at, event, organ_id, package_id, detail, sha256, prev, hash_)


def checkpoint_row(row: Iterable[Any]) -> Checkpoint:
    seq, head, at, signature = row
    return Checkpoint(seq, head, at, blob(signature))
