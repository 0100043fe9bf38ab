"""Exchange statistics from maintained counters (SPEC §6), pure.

The store keeps one row per (day, metric, key) and updates it in the same transaction as the
change it counts, so a statistics request sums a few hundred small rows however many millions
of packages the hub holds. ``day`` is the day (UTC) the hub received the package a count is
about; ``from``/``to`` select those days.

Latency (receipt → acknowledgement) is counted in a histogram of logarithmic buckets, each
25 % wider than the one before, so percentiles come out as the upper edge of the bucket that
holds them: an upper bound within 25 % of the true value, from a few dozen rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

BUCKET_BASE = 1.25


class Metric(StrEnum):
    """The counter names (one namespace, kept in one place)."""

    DOCUMENTS = "documents"  # edocs received, key ""
    STATUSES = "statuses"  # status packages received, key ""
    DELIVERIES = "deliveries"  # edoc deliveries created, key ""
    STATE = "state"  # edoc deliveries now in a state, key = state
    STATUS_CODE = "status_code"  # status packages, key = code
    SENT = "sent"  # edocs sent, key = sender
    RECEIVED = "received"  # edoc deliveries, key = recipient
    PENDING = "pending"  # edoc deliveries still in the inbox, key = recipient
    FAILED = "failed"  # edoc deliveries whose push gave up, key = recipient
    LATENCY = "latency"  # acknowledged edoc deliveries, key = latency bucket
    FACE = "face"  # packages received by the national axis's face, key = system id
    DEVIATIONS = "deviations"  # packages taken with a deviation, key = "system rule"


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a latency: 0 for ≤ 1 ms, else ⌈log₁.₂₅ ms⌉."""
    if ms <= 1:
        return 0
    return math.ceil(math.log(ms) / math.log(BUCKET_BASE) - 1e-9)


def bucket_upper_ms(bucket: int) -> float:
    """The largest latency a bucket holds."""
    return float(BUCKET_BASE**bucket)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The upper edge of the bucket holding the ``q``-quantile (0 < q ≤ 1); None if empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = math.ceil(q * total - 1e-9)  # the smallest count that reaches the quantile
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return round(bucket_upper_ms(bucket), 1)
    return round(bucket_upper_ms(max(histogram)), 1)


@dataclass
class Counters:
    """Summed counters, ready to be read as statistics."""

    totals: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    per_day: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, int]]) -> Counters:
        """From (day, metric, key, n) rows."""
        counters = cls()
        for day, metric, key, n in rows:
            metric_totals = counters.totals[metric]
            metric_totals[key] = metric_totals.get(key, 0) + n
            if key == "" and metric in (Metric.DOCUMENTS, Metric.STATUSES, Metric.DELIVERIES):
                counters.per_day[day][metric] = counters.per_day[day].get(metric, 0) + n
        return counters

    def total(self, metric: str) -> int:
        return sum(self.totals.get(metric, {}).values())

    def nonzero(self, metric: str) -> dict[str, int]:
        return {k: v for k, v in sorted(self.totals.get(metric, {}).items()) if v}


def top(values: Mapping[str, int], n: int) -> list[dict[str, Any]]:
    """The ``n`` largest, ties by key."""
    ranked = sorted(((-v, k) for k, v in values.items() if v), key=lambda item: item)[:n]
    return [{"organ_id": k, "count": -v} for v, k in ranked]


def summarize(counters: Counters, registered: int, active: int, top_n: int = 10) -> dict[str, Any]:
    """The ``GET /v1/stats`` document (SPEC §6)."""
    histogram = {int(k): v for k, v in counters.nonzero(Metric.LATENCY).items()}
    documents, deliveries = counters.total(Metric.DOCUMENTS), counters.total(Metric.DELIVERIES)
    return {
        "documents": documents,
        "statuses": counters.total(Metric.STATUSES),
        "deliveries": deliveries,
        # As the national axis counts, and its published figures: sent plus received.
        "sent": documents,
        "received": deliveries,
        "sent_and_received": documents + deliveries,
        "convention": "sent + received, as the national axis counts"
        " (a document sent to 4 agencies: 5)",
        "by_state": counters.nonzero(Metric.STATE),
        "by_status_code": counters.nonzero(Metric.STATUS_CODE),
        "agencies": {"registered": registered, "active": active},
        "latency_ms": {
            "p50": percentile(histogram, 0.50),
            "p95": percentile(histogram, 0.95),
            "p99": percentile(histogram, 0.99),
        },
        "per_day": [
            {
                "day": day,
                "documents": values.get(Metric.DOCUMENTS, 0),
                "statuses": values.get(Metric.STATUSES, 0),
                "deliveries": values.get(Metric.DELIVERIES, 0),
            }
            for day, values in sorted(counters.per_day.items())
        ],
        "top_senders": top(counters.totals.get(Metric.SENT, {}), top_n),
        "top_recipients": top(counters.totals.get(Metric.RECEIVED, {}), top_n),
        # The national axis's face: packages each system sent, and what it sent them with.
        "by_system": counters.nonzero(Metric.FACE),
        "deviations": counters.nonzero(Metric.DEVIATIONS),
    }


def per_agency(counters: Counters) -> list[dict[str, Any]]:
    """Sent, received, pending and failed per agency, for the dashboard."""
    names: set[str] = set()
    for metric in (Metric.SENT, Metric.RECEIVED, Metric.PENDING, Metric.FAILED):
        names.update(counters.totals.get(metric, {}))
    return [
        {
            "organ_id": organ_id,
            "sent": counters.totals.get(Metric.SENT, {}).get(organ_id, 0),
            "received": counters.totals.get(Metric.RECEIVED, {}).get(organ_id, 0),
            "pending": counters.totals.get(Metric.PENDING, {}).get(organ_id, 0),
            "failed": counters.totals.get(Metric.FAILED, {}).get(organ_id, 0),
        }
        for organ_id in sorted(names)
    ]
