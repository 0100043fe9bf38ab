"""The schema, as versioned migrations that both stores apply (``axis init``, ``axis serve``).

Each migration is written once, in SQLite's dialect; :func:`for_postgres` makes the few
changes PostgreSQL needs (``BYTEA`` for ``BLOB``, 64-bit sequence numbers, ``BIGSERIAL`` for
SQLite's ``AUTOINCREMENT``). A store records what it applied in ``schema_migrations`` and, on
opening, applies what is missing, each migration in its own transaction.

Version 1 is the schema as it stood before migrations existed, written with ``IF NOT
EXISTS`` throughout: a database made by an older Axis takes it as a no-op and is then
recorded as version 1. Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from axis.errors import Unavailable


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # SQLite's dialect
    postgres_sql: str | None = None  # PostgreSQL's own, where it is not a translation of sql

    def postgres(self) -> str:
        return for_postgres(self.sql) if self.postgres_sql is None else self.postgres_sql


TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "agencies, packages, deliveries, log, checkpoints, daily counters",
        """
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
""",
    ),
    Migration(
        2,
        "an index of the deliveries that hold a push lease",
        """
-- Few rows hold a lease at a time: giving them back (on stop, on start) reads only those.
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (lease_owner)
    WHERE lease_owner IS NOT NULL;
""",
    ),
    Migration(
        3,
        "the certificate an agency-registered log entry names, in its own column",
        """
-- Before, it was the end of the entry's free-text detail. Older entries keep it there: the
-- chain is never rewritten, and their hash does not cover this column (LogEntry.fields).
ALTER TABLE log ADD COLUMN cert_sha256 TEXT;
""",
    ),
    Migration(
        4,
        "the codes each agency holds (both OrganId generations), and closed codes",
        """
-- An agency is filed under its OrganId and may hold more codes (QCVN 102:2016's 000.00.00.G22
-- and Decision 20/2020's G22 for one body); a code closes when bodies merge, naming its
-- successor, and is never given out again. organ_id is NULL for a closed code that no
-- agency here held.
CREATE TABLE agency_codes (
    code      TEXT PRIMARY KEY,
    organ_id  TEXT REFERENCES agencies (organ_id),
    added_at  TEXT NOT NULL,
    successor TEXT,
    closed_at TEXT
);
CREATE INDEX agency_codes_agency ON agency_codes (organ_id);
INSERT INTO agency_codes (code, organ_id, added_at)
    SELECT organ_id, organ_id, registered_at FROM agencies;
""",
    ),
    Migration(
        5,
        "systems of the national axis's face, the agencies of each, notes and marks",
        """
-- An integration centre's system (VNPT's SDK: systemId and secret) speaks for its agencies
-- on the national axis's face. The secret is sealed (AES-GCM) under a key kept in the data
-- folder, never in the database: the HMAC needs the secret itself, so it cannot be hashed.
CREATE TABLE systems (
    system_id TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    secret    BLOB NOT NULL,
    active    INTEGER NOT NULL DEFAULT 1,
    added_at  TEXT NOT NULL
);
ALTER TABLE agencies ADD COLUMN system_id TEXT;
CREATE INDEX agencies_system ON agencies (system_id) WHERE system_id IS NOT NULL;
-- What a package was taken with on that face: unsigned, deviations from QCVN 102:2016.
ALTER TABLE packages ADD COLUMN notes TEXT;
-- The last transport mark a system's updateStatus gave a delivery (processing, fail, ...).
ALTER TABLE deliveries ADD COLUMN mark TEXT;
""",
    ),
    Migration(
        6,
        "packages by their sender's sha256: a byte-identical resend answered before verifying",
        """
CREATE INDEX packages_sha256 ON packages (sender, sha256);
""",
    ),
    Migration(
        7,
        "an agency's pending deliveries in order: an inbox page costs what it holds",
        """
-- The states are literals, as the inbox query writes them: a planner uses a partial index
-- only for a query that implies its WHERE. (recipient, state, seq) made a page merge and
-- sort every pending delivery of the agency.
CREATE INDEX deliveries_pending ON deliveries (recipient, seq)
    WHERE state IN ('delivered', 'failed', 'queued');
""",
    ),
    Migration(
        8,
        "log entries and counter increments committed before they are chained and folded",
        """
-- PostgreSQL's workers commit their entries here, unchained; a chainer moves them into log
-- in one order just after (axis.store.postgres). SQLite chains at once and leaves both empty.
CREATE TABLE log_pending (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    event       TEXT NOT NULL,
    organ_id    TEXT,
    package_id  TEXT,
    detail      TEXT,
    sha256      TEXT,
    cert_sha256 TEXT
);
CREATE INDEX log_pending_package ON log_pending (package_id) WHERE package_id IS NOT NULL;
-- Increments of daily, appended without touching its rows (which every change shares) and
-- summed into them by the chainer.
CREATE TABLE daily_pending (
    day    TEXT NOT NULL,
    metric TEXT NOT NULL,
    key    TEXT NOT NULL,
    n      INTEGER NOT NULL
);
""",
    ),
    Migration(
        9,
        "a count of the directory's changes: a hub keeps the directory in memory between two",
        """
-- Every change to agencies, their codes or systems adds one, in its own transaction
-- (axis.store.writes). A hub process reads it once a request and keeps the directory's
-- lookups while it stands still (axis.usecases.directory), whoever made the change: another
-- worker, or the command line on the same database.
CREATE TABLE directory_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO directory_changes (id, n) VALUES (1, 0);
""",
    ),
    Migration(
        10,
        "a push claim reads the due and leased deliveries only, however many are stored",
        """
-- The claim (axis.store.writes._CLAIM) counts live leases by recipient and takes due
-- deliveries of one state. With deliveries_leased and deliveries_due alone, SQLite counted
-- the leases by scanning every delivery in recipient order (deliveries_inbox) and took the
-- due ones through deliveries_state: one claim cost 1 s at a million deliveries, and the
-- push worker claims every time work arrives. These two hold exactly what the claim reads.
CREATE INDEX deliveries_due_by_state ON deliveries (state, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_leases_by_recipient ON deliveries (recipient, lease_until)
    WHERE lease_owner IS NOT NULL;
""",
    ),
    Migration(
        11,
        "package bodies stored as they came, never compressed (PostgreSQL)",
        """
-- SQLite stores a BLOB as it is: nothing to change.
""",
        postgres_sql="""
-- PostgreSQL tried to compress every body over 2 KB with pglz before storing it out of line.
-- A package is mostly base64 of PDFs and scans, compressed already: a 27 KB edoc came out
-- no smaller, and the try cost 0.2 ms of the server's CPU on each insert (600 against 380 us
-- for the insert). EXTERNAL keeps bodies out of line, uncompressed; rows stored before stay
-- as they are. (A hub of compressible packages would trade disk for that CPU; none is known.)
ALTER TABLE packages ALTER COLUMN body SET STORAGE EXTERNAL;
""",
    ),
)

LATEST = MIGRATIONS[-1].version


def for_postgres(sql: str) -> str:
    """SQLite's DDL in PostgreSQL's dialect: the only differences our schema has."""
    sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    # Byte order, as SQLite compares: ORDER BY organ_id must not depend on the locale.
    sql = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)
    # Sequence numbers and counters outgrow 32 bits in a national deployment's lifetime.
    sql = re.sub(r"^(\s+(?:seq|n)\s+)INTEGER\b", r"\1BIGINT", sql, flags=re.M)
    return sql


def pending(applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in order."""
    return [m for m in MIGRATIONS if m.version not in applied]


def check_not_newer(applied: set[int]) -> None:
    """Raises Unavailable if a newer Axis has migrated this database past what we know."""
    if applied and max(applied) > LATEST:
        raise Unavailable(
            f"the database is at schema version {max(applied)}, newer than this Axis knows"
            f" ({LATEST}): upgrade Axis"
        )


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Apply the missing migrations to an SQLite connection (autocommit mode); each in its
    own transaction. Returns the versions applied now."""
    conn.execute(TRACKING)
    applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    check_not_newer(applied)
    done = []
    for migration in pending(applied):
        now = datetime.now(UTC).isoformat(timespec="seconds")
        name = migration.name.replace("'", "''")
        try:
            # executescript runs the DDL as written (several statements) inside our BEGIN.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\nINSERT INTO schema_migrations"
                f" VALUES ({migration.version}, '{name}', '{now}');\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(migration.version)
    return done
