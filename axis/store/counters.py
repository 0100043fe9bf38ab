"""What every write adds beside its change, worked out without a database: the daily
statistics counters (SPEC §6) as increments, and the operator's log line of a committed entry.

Each store applies the increments in the same transaction as the change (an upsert into
``daily``), so the counters commit or vanish with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from axis.core.lifecycle import PENDING, DeliveryState
from axis.core.logchain import LogEntry
from axis.core.stats import Metric, latency_bucket
from axis.store.rows import day_of, dt

events = logging.getLogger("axis.events")

# (day, metric, key, n): add n to the counter of that day, metric and key.
Bump = tuple[str, str, str, int]


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
            "cert_sha256": entry.cert_sha256,
            "log_seq": entry.seq,
        },
    )


def summed(bumps: Iterable[Bump]) -> list[Bump]:
    """``bumps`` with one increment per counter, their sum; a counter moved up and down again
    (queued, then delivered, in one batch) is left out."""
    totals: dict[tuple[str, str, str], int] = {}
    for day, metric, key, n in bumps:
        totals[day, metric, key] = totals.get((day, metric, key), 0) + n
    return [(*counter, n) for counter, n in totals.items() if n]


def one(received_at: str, metric: str, key: str = "", n: int = 1) -> Bump:
    """Add ``n`` to a counter of the day the package was received."""
    return (day_of(received_at), metric, key, n)


def new_edoc(received_at: str, sender: str, recipients: tuple[str, ...]) -> list[Bump]:
    """The counters a new edoc moves."""
    bumps = [
        one(received_at, Metric.DOCUMENTS),
        one(received_at, Metric.SENT, sender),
        one(received_at, Metric.DELIVERIES, n=len(recipients)),
        one(received_at, Metric.STATE, DeliveryState.QUEUED.value, len(recipients)),
    ]
    for recipient in recipients:
        bumps.append(one(received_at, Metric.RECEIVED, recipient))
        bumps.append(one(received_at, Metric.PENDING, recipient))
    return bumps


def move(
    received_at: str,
    recipient: str,
    before: DeliveryState,
    after: DeliveryState,
    at: datetime,
) -> list[Bump]:
    """The counters an edoc delivery's move from ``before`` to ``after`` changes."""
    bumps = [
        one(received_at, Metric.STATE, before.value, -1),
        one(received_at, Metric.STATE, after.value, 1),
    ]
    if (before in PENDING) != (after in PENDING):
        bumps.append(one(received_at, Metric.PENDING, recipient, 1 if after in PENDING else -1))
    if (before is DeliveryState.FAILED) != (after is DeliveryState.FAILED):
        failed = after is DeliveryState.FAILED
        bumps.append(one(received_at, Metric.FAILED, recipient, 1 if failed else -1))
    if after is DeliveryState.ACKNOWLEDGED:
        latency_ms = (at - dt(received_at)).total_seconds() * 1000
        bumps.append(one(received_at, Metric.LATENCY, str(latency_bucket(latency_ms))))
    return bumps
