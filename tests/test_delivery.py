"""Push leases and the delivery worker, on a real SQLite store with an in-memory transport."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from axis.core.lifecycle import DeliveryEvent
from axis.errors import PushFailed
from axis.host.config import DeliverySettings
from axis.store import writes
from axis.store.base import Agency, Store
from axis.usecases.delivery import DeliveryWorker
from tests.helpers import eventually
from tests.test_store import (
    G22,
    H10,
    H41,
    T0,
    T01,
    Backend,
    agency,
    backend,
    package,
    sqlite_only,
    store,
)

__all__ = ["backend", "store"]  # the fixtures, shared with the store tests

FAST = DeliverySettings(retry_base_s=0.01, retry_cap_s=0.02, lease_s=5, push_workers=4)


class MemoryTransport:
    """A PushTransport that fails the first ``failures`` pushes of each package."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.pushes: Counter[str] = Counter()
        self.delivered: list[str] = []

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        self.pushes[package_id] += 1
        await asyncio.sleep(0)  # let other workers interleave
        if self.pushes[package_id] <= self.failures:
            raise PushFailed("connection refused")
        self.delivered.append(package_id)

    async def close(self) -> None:
        pass


async def _pushed_agency(store: Store) -> None:
    await store.add_agency(agency(G22, 0))
    await store.add_agency(replace(agency(H41, 1), endpoint="https://127.0.0.1:9/"))
    await store.add_agency(agency(H10, 2))


async def test_a_claim_reads_only_the_due_and_the_leased(store: Store, backend: Backend) -> None:
    """The push worker claims every time work arrives, so a claim must cost what is due and
    leased, not what is stored: through the two partial indexes of schema 10, never a walk of
    every delivery (found replaying the launch window: 1 s a claim at a million deliveries).
    PostgreSQL plans by its statistics, which an empty test table does not have."""
    path = sqlite_only(backend)
    now = "2020-01-06T08:00:00.000000Z"
    args = (now, now, "queued", now, 2, "queued", now, 10)
    with contextlib.closing(sqlite3.connect(path)) as db:
        plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + writes._CLAIM, args))
    assert "deliveries_due_by_state" in plan and "deliveries_leases_by_recipient" in plan, plan
    assert "deliveries_inbox" not in plan and "USING INDEX deliveries_state " not in plan, plan


async def test_a_lease_keeps_others_off_until_it_expires(store: Store) -> None:
    await _pushed_agency(store)
    await store.insert_package(replace(package(1), push_recipients=(H41,)))
    first = await store.claim_pushes("a", T0 + timedelta(seconds=5), 60, 10)
    assert [(j.package_id, j.recipient) for j in first] == [("pkg-0001", H41)]
    assert await store.claim_pushes("b", T0 + timedelta(seconds=30), 60, 10) == []
    # Worker "a" died: after the lease, "b" takes the delivery over.
    taken = await store.claim_pushes("b", T0 + timedelta(seconds=70), 60, 10)
    assert [j.recipient for j in taken] == [H41]
    # "a" waking up late cannot overwrite "b"'s lease with its failure.
    await store.push_failed(first[0], "a", T0 + timedelta(seconds=71), "late", None)
    row = next(d for d in await store.deliveries("pkg-0001") if d.recipient == H41)
    assert row.state.value == "queued" and row.attempts == 0
    await store.push_delivered(taken[0], T0 + timedelta(seconds=72))
    row = next(d for d in await store.deliveries("pkg-0001") if d.recipient == H41)
    assert row.state.value == "delivered"
    assert await store.claim_pushes("c", T0 + timedelta(days=1), 60, 10) == []


async def test_a_pulled_or_recalled_delivery_is_not_pushed(store: Store) -> None:
    await _pushed_agency(store)
    await store.insert_package(replace(package(1), push_recipients=(H41,)))
    await store.apply_event("pkg-0001", H41, DeliveryEvent.FETCHED, T0)
    assert await store.claim_pushes("a", T0 + timedelta(seconds=5), 60, 10) == []


async def test_the_worker_retries_then_delivers(store: Store) -> None:
    await _pushed_agency(store)
    now = datetime.now(UTC)
    await store.insert_package(replace(package(1, at=now), push_recipients=(H41,)))
    transport = MemoryTransport(failures=2)
    worker = DeliveryWorker(store, transport, FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def delivered() -> bool:
        rows = await store.deliveries("pkg-0001")
        return any(d.recipient == H41 and d.state.value == "delivered" for d in rows)

    try:
        await eventually(delivered, timeout=10)
    finally:
        stop.set()
        await task
    assert transport.pushes["pkg-0001"] == 3
    row = next(d for d in await store.deliveries("pkg-0001") if d.recipient == H41)
    assert row.attempts == 2 and row.last_error == "connection refused"
    hops = [(h.organ_id, h.event, h.detail) for h in await store.trace("pkg-0001")]
    assert (H41, "delivered", "push") in hops


async def test_two_workers_push_each_package_once(store: Store) -> None:
    await _pushed_agency(store)
    now = datetime.now(UTC)
    for n in range(40):
        await store.insert_package(replace(package(n, at=now), push_recipients=(H41,)))
    transport = MemoryTransport()
    workers = [DeliveryWorker(store, transport, FAST) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]

    async def all_delivered() -> bool:
        return len(transport.delivered) >= 40

    try:
        await eventually(all_delivered, timeout=20)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(transport.pushes) == 40 and set(transport.pushes.values()) == {1}


class FlakyTransport(MemoryTransport):
    """Raises an unexpected error for one package, hangs for one recipient."""

    def __init__(self, broken: str = "", hanging: str = "") -> None:
        super().__init__()
        self.broken = broken
        self.hanging = hanging

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        if package_id == self.broken:
            raise UnicodeError("label empty or too long")  # e.g. a mistyped endpoint host
        if recipient.organ_id == self.hanging:
            await asyncio.sleep(60)  # cut short by push_timeout_s
        await super().push(recipient, package_id, body)


async def _run_until(worker: DeliveryWorker, check: Callable[[], Awaitable[bool]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(check, timeout=15)
    finally:
        stop.set()
        await task


async def test_an_unexpected_error_fails_one_push_not_the_worker(store: Store) -> None:
    await _pushed_agency(store)
    now = datetime.now(UTC)
    for n in (1, 2):
        await store.insert_package(replace(package(n, at=now), push_recipients=(H41,)))
    transport = FlakyTransport(broken="pkg-0001")
    worker = DeliveryWorker(store, transport, FAST)

    async def second_delivered_first_failed() -> bool:
        # Both, whichever comes first: the pushes run side by side, and the failed one's
        # record may commit after the other's delivery (a PostgreSQL worker waits for the
        # chainer on a delivery, not on a retry).
        failed = await store.delivery("pkg-0001", H41)
        return "pkg-0002" in transport.delivered and failed is not None and failed.attempts >= 1

    await _run_until(worker, second_delivered_first_failed)
    row = await store.delivery("pkg-0001", H41)
    assert row is not None and row.attempts >= 1
    assert row.last_error is not None and row.last_error.startswith("UnicodeError")


async def test_a_dead_endpoint_does_not_starve_the_others(store: Store) -> None:
    await _pushed_agency(store)
    await store.add_agency(replace(agency(T01, 3), endpoint="https://127.0.0.1:9/"))
    now = datetime.now(UTC)
    for n in range(20):  # a backlog for the dead endpoint, due first
        await store.insert_package(
            replace(package(n, recipients=(T01,), at=now), push_recipients=(T01,))
        )
    await store.insert_package(
        replace(package(99, recipients=(H41,), at=now + timedelta(seconds=1)),
                push_recipients=(H41,))
    )  # fmt: skip
    slow = replace(FAST, push_timeout_s=2.0, push_workers=4)
    transport = FlakyTransport(hanging=T01)
    worker = DeliveryWorker(store, transport, slow, clock=lambda: now + timedelta(seconds=2))

    async def healthy_delivered() -> bool:
        return "pkg-0099" in transport.delivered

    await _run_until(worker, healthy_delivered)  # well before 20 timeouts could pass


async def test_a_stopping_worker_gives_its_leases_back(store: Store) -> None:
    await _pushed_agency(store)
    now = datetime.now(UTC)
    await store.insert_package(replace(package(1, at=now), push_recipients=(H41,)))
    transport = FlakyTransport(hanging=H41)
    worker = DeliveryWorker(store, transport, replace(FAST, push_timeout_s=30.0))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def pushing() -> bool:
        return transport.pushes["pkg-0001"] == 0 and bool(worker._running)

    await eventually(pushing, timeout=10)
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    taken = await store.claim_pushes("next", datetime.now(UTC), 60, 10)
    assert [j.package_id for j in taken] == ["pkg-0001"]
