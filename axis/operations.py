"""What operators ask of the hub (SPEC §6, §7): statistics, the log and its proof, the
dashboard's figures, and the checkpointer that signs the log's head as it grows.

Like :mod:`axis.hub`, this layer knows no aiohttp and no SQL: it reads through the Store
protocol and leaves hashing, signing and counting rules to the pure core.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography import x509

from axis.core import stats
from axis.core.lifecycle import DeliveryState
from axis.core.logchain import (
    GENESIS,
    Checkpoint,
    checkpoint_valid,
    sign_checkpoint,
    verify_chain,
)
from axis.core.pki import PrivateKey
from axis.store.base import Store

log = logging.getLogger("axis.operations")

PAGE = 5000


async def statistics(
    store: Store, day_from: date | None = None, day_to: date | None = None
) -> dict[str, Any]:
    """The ``GET /v1/stats`` document for packages received from ``day_from`` to ``day_to``."""
    rows = await store.counter_rows(
        day_from.isoformat() if day_from else None, day_to.isoformat() if day_to else None
    )
    registered, active = await store.agency_counts()
    return stats.summarize(stats.Counters.from_rows(rows), registered, active)


async def dashboard(store: Store) -> dict[str, Any]:
    """Everything the dashboard shows but the log tail, in one document."""
    rows = await store.counter_rows(None, None)
    counters = stats.Counters.from_rows(rows)
    registered, active = await store.agency_counts()
    names = {a.organ_id: a.name for a in await store.list_agencies()}
    agencies = stats.per_agency(counters)
    for row in agencies:
        row["name"] = names.get(row["organ_id"], "")
    return {
        "stats": stats.summarize(counters, registered, active),
        "agencies": agencies,
        "failing": [d.as_json() for d in await store.deliveries_in(DeliveryState.FAILED, 20)],
        "oldest_pending": [d.as_json() for d in await store.oldest_pending(20)],
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class VerifyReport:
    """What ``axis log verify`` found: counts, and the first problem (None: all intact)."""

    entries: int
    checkpoints: int
    packages: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


Progress = Callable[[str, int], None]


async def verify_log(
    store: Store, hub_cert: x509.Certificate, progress: Progress | None = None
) -> VerifyReport:
    """Recompute the chain, check every checkpoint's signature and head, and check that every
    stored package still hashes to what the log recorded when it arrived."""
    checkpoints = {c.seq: c for c in await store.checkpoints()}
    for checkpoint in checkpoints.values():
        if not checkpoint_valid(checkpoint, hub_cert):
            forged = f"checkpoint {checkpoint.seq}: its signature is not the hub's"
            return VerifyReport(0, len(checkpoints), 0, forged)
    problem: str | None
    entries, received, problem = await _verify_entries(store, checkpoints, progress)
    if problem:
        return VerifyReport(entries, len(checkpoints), 0, problem)
    beyond = [seq for seq in checkpoints if seq > entries]
    if beyond:
        return VerifyReport(
            entries,
            len(checkpoints),
            0,
            f"entry {entries + 1}: missing (checkpoint {max(beyond)} was signed over"
            f" {max(beyond)} entries, the log now has {entries})",
        )
    packages, problem = await _verify_packages(store, progress)
    if problem is None and packages != received:
        problem = f"the log records {received} packages received, the store holds {packages}"
    return VerifyReport(entries, len(checkpoints), packages, problem)


async def _verify_entries(
    store: Store, checkpoints: dict[int, Checkpoint], progress: Progress | None
) -> tuple[int, int, str | None]:
    prev, seq, received = GENESIS, 0, 0
    while page := await store.log_entries(seq, PAGE):
        broken = verify_chain(page, prev, seq + 1)
        if broken is not None:
            return seq, received, f"entry {broken.seq}: {broken.reason}"
        for entry in page:
            checkpoint = checkpoints.get(entry.seq)
            if checkpoint is not None and checkpoint.head != entry.hash:
                return (
                    entry.seq,
                    received,
                    (f"entry {entry.seq}: differs from what checkpoint {entry.seq} signed"),
                )
            received += entry.event == "received"
        prev, seq = page[-1].hash, page[-1].seq
        if progress:
            progress("log entries", len(page))
    return seq, received, None


async def _verify_packages(store: Store, progress: Progress | None) -> tuple[int, str | None]:
    after, count = 0, 0
    while page := await store.package_page(after, 500):
        recorded = await store.received_hashes([pid for _, pid, _ in page])
        for _, package_id, body in page:
            expected = recorded.get(package_id)
            if expected is None:
                return count, f"package {package_id}: the log has no record of its arrival"
            actual = hashlib.sha256(body).hexdigest()
            if actual != expected:
                return count, (
                    f"package {package_id}: changed since it arrived"
                    f" (sha256 {actual[:16]}…, the log recorded {expected[:16]}…)"
                )
            count += 1
        after = page[-1][0]
        if progress:
            progress("packages", len(page))
    return count, None


class Checkpointer:
    """Signs the log's head every ``every`` entries or ``interval_s`` seconds, whichever first."""

    def __init__(self, store: Store, key: PrivateKey, every: int, interval_s: float) -> None:
        self.store = store
        self.key = key
        self.every = every
        self.interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        last_seq = max((c.seq for c in await self.store.checkpoints()), default=0)
        last_time = asyncio.get_running_loop().time()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, self.interval_s))
            except TimeoutError:
                pass
            now = asyncio.get_running_loop().time()
            try:
                seq, head = await self.store.log_head()
                due = seq - last_seq >= self.every or now - last_time >= self.interval_s
                if head is not None and seq > last_seq and (due or stop.is_set()):
                    await self.sign(seq, head)
                    last_seq, last_time = seq, now
            except Exception:  # the store may be briefly unavailable; try again next tick
                log.exception("could not sign a log checkpoint")

    async def sign(self, seq: int, head: str) -> Checkpoint:
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        checkpoint = sign_checkpoint(self.key, seq, head, at)
        await self.store.add_checkpoint(checkpoint)
        log.info("signed log checkpoint %d", seq, extra={"event": "checkpoint", "log_seq": seq})
        return checkpoint
