"""What operators ask of the hub (SPEC §6, §7): statistics, the dashboard's figures, and the
checkpointer that signs the log's head as it grows (the proof is :mod:`axis.usecases.verification`).

Like :mod:`axis.usecases.hub`, this layer knows no aiohttp and no SQL: it reads through the Store
protocol and leaves hashing, signing and counting rules to the pure core.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime
from typing import Any

from axis.core import stats
from axis.core.lifecycle import DeliveryState
from axis.core.logchain import (
    Checkpoint,
    sign_checkpoint,
)
from axis.core.pki import PrivateKey
from axis.store.base import Store

log = logging.getLogger("axis.operations")


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
        seq, head = await self.store.log_head()
        if head is not None and seq > last_seq:  # entries a killed hub left unsigned
            await self.sign(seq, head)
            last_seq = seq
        while not stop.is_set():
            try:
                async with asyncio.timeout(min(1.0, self.interval_s)):
                    await stop.wait()
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
