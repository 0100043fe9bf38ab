"""What every write of the SQLite store appends beside the change, in the same transaction:
the hash-chained log entry (SPEC §7) and the daily statistics counters (SPEC §6).

The functions take the writer connection of an open transaction: they run only inside the
group writer's transactions (:mod:`axis.store.sqlite_thread`), so the entry and the counters
commit or vanish with the change.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from axis.core.lifecycle import PENDING, DeliveryState
from axis.core.logchain import GENESIS, LogEntry, link
from axis.core.stats import Metric, latency_bucket
from axis.store.sqlite_schema import day_of, dt, ts

events = logging.getLogger("axis.events")


def log_line(entry: LogEntry) -> None:
    """One line per committed state change, with the package id, for operators who follow a
    package with grep (called after the commit, so the log never shows a change that failed)."""
    events.info(
        "%s %s",
        entry.event,
        entry.package_id or entry.organ_id or "",
        extra={
            "event": entry.event,
            "package_id": entry.package_id,
            "organ_id": entry.organ_id,
            "detail": entry.detail,
            "log_seq": entry.seq,
        },
    )


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
    rows = w.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchall()
    seq, prev = (rows[0][0], rows[0][1]) if rows else (0, GENESIS)
    entry = link(prev, seq + 1, ts(at), event, organ_id, package_id, detail, sha256)
    w.execute(
        "INSERT INTO log (seq, at, event, organ_id, package_id, detail, sha256, prev, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.seq, entry.at, entry.event, entry.organ_id, entry.package_id, entry.detail,
            entry.sha256, entry.prev, entry.hash,
        ),
    )  # fmt: skip
    return entry


def bump(w: sqlite3.Connection, received_at: str, metric: str, key: str = "", n: int = 1) -> None:
    """Add ``n`` to a counter of the day the package was received."""
    w.execute(
        "INSERT INTO daily (day, metric, key, n) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (day, metric, key) DO UPDATE SET n = n + excluded.n",
        (day_of(received_at), metric, key, n),
    )


def count_new_edoc(
    w: sqlite3.Connection, received_at: str, sender: str, recipients: tuple[str, ...]
) -> None:
    bump(w, received_at, Metric.DOCUMENTS)
    bump(w, received_at, Metric.SENT, sender)
    bump(w, received_at, Metric.DELIVERIES, n=len(recipients))
    bump(w, received_at, Metric.STATE, DeliveryState.QUEUED.value, len(recipients))
    for recipient in recipients:
        bump(w, received_at, Metric.RECEIVED, recipient)
        bump(w, received_at, Metric.PENDING, recipient)


def count_move(
    w: sqlite3.Connection,
    received_at: str,
    recipient: str,
    before: DeliveryState,
    after: DeliveryState,
    at: datetime,
) -> None:
    """Keep the counters of an edoc delivery in step with its move from ``before``."""
    bump(w, received_at, Metric.STATE, before.value, -1)
    bump(w, received_at, Metric.STATE, after.value, 1)
    if (before in PENDING) != (after in PENDING):
        bump(w, received_at, Metric.PENDING, recipient, 1 if after in PENDING else -1)
    if (before is DeliveryState.FAILED) != (after is DeliveryState.FAILED):
        failed = after is DeliveryState.FAILED
        bump(w, received_at, Metric.FAILED, recipient, 1 if failed else -1)
    if after is DeliveryState.ACKNOWLEDGED:
        latency_ms = (at - dt(received_at)).total_seconds() * 1000
        bump(w, received_at, Metric.LATENCY, str(latency_bucket(latency_ms)))
