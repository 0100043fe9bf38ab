"""The SQLite schema (rows and records: :mod:`axis.store.rows`)."""

from __future__ import annotations

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
