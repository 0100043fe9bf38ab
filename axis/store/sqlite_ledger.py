"""What every write of the SQLite store appends beside the change, in the same transaction:
the hash-chained log entry (SPEC §7) and the daily statistics counters (SPEC §6, worked out
by :mod:`axis.store.counters`).

The functions take the writer connection of an open transaction: they run only inside the
group writer's transactions (:mod:`axis.store.sqlite_thread`), so the entry and the counters
commit or vanish with the change.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from axis.core.logchain import GENESIS, LogEntry, link
from axis.store import counters
from axis.store.rows import LOG_HEAD, LOG_INSERT, UPSERT_DAILY, log_values, ts


def append(
    w: sqlite3.Connection,
    at: datetime,
    event: str,
    organ_id: str | None = None,
    package_id: str | None = None,
    detail: str | None = None,
    sha256: str | None = None,
) -> LogEntry:
    """Append one entry to the chain (the one writer thread serializes the head)."""
    rows = w.execute(LOG_HEAD).fetchall()
    seq, prev = (rows[0][0], rows[0][1]) if rows else (0, GENESIS)
    entry = link(prev, seq + 1, ts(at), event, organ_id, package_id, detail, sha256)
    w.execute(LOG_INSERT, log_values(entry))
    return entry


def bump_all(w: sqlite3.Connection, bumps: list[counters.Bump]) -> None:
    """Apply counter increments (:mod:`axis.store.counters`) in the open transaction."""
    w.executemany(UPSERT_DAILY, bumps)
