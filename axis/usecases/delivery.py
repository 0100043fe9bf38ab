"""Push delivery: the worker that POSTs packages to agencies registered with an endpoint.

The worker loop stays small: claim due deliveries (a lease per delivery, so no two workers push
the same one and a crashed worker's leases expire and are taken over), push each through a
:class:`PushTransport`, ask the pure retry policy what a failure means, save the outcome. A 2xx
makes the delivery ``delivered``; a failure schedules the next try or, when the policy gives up,
makes it ``failed`` (the package stays in the inbox for pull).

Guarantee, said plainly: a push may be made more than once (a worker that dies after the
recipient's 2xx but before saving it leaves the lease to expire and the push to be repeated).
Recipients therefore treat the ``Axis-Package-Id`` as an idempotency key; ``axis-node listen``
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from axis.core.clock import utc_now
from axis.core.lifecycle import DeliveryState
from axis.core.retry import GiveUp, RetryPolicy, next_attempt
from axis.errors import PushFailed
from axis.host.config import DeliverySettings
from axis.store.base import Agency, PushJob, Store

log = logging.getLogger("axis.delivery")

IDLE_POLL_S = 1.0  # how often an idle worker looks for retries that came due
PER_RECIPIENT = 2  # pushes in flight to one agency at once: a dead endpoint holds no more


class PushOutcome(StrEnum):
    """How one push ended, once the worker has saved it."""

    DELIVERED = "delivered"  # a 2xx: the delivery is delivered
    RETRY = "retry"  # it failed and is scheduled again
    GAVE_UP = "gave-up"  # it failed for the last time: the delivery is failed


class PushTransport(Protocol):
    """How a package reaches an agency's endpoint. Tests and the simulator plug in others."""

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        """Deliver ``body``; return on a 2xx, raise PushFailed otherwise."""

    async def close(self) -> None:
        """Release connections."""


class DeliveryWorker:
    """Pushes due deliveries until stopped; several may run on one store."""

    def __init__(
        self,
        store: Store,
        transport: PushTransport,
        settings: DeliverySettings,
        wake: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_event: Callable[[PushOutcome], None] | None = None,
    ) -> None:
        self.store = store
        # Told each outcome once it is saved (metrics).
        self.on_event = on_event or (lambda event: None)
        self.transport = transport
        self.settings = settings
        self.policy: RetryPolicy = settings.retry_policy()
        self.wake = wake or asyncio.Event()
        self.clock = clock
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._running: dict[asyncio.Task[None], PushJob] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Push until ``stop`` is set, keeping up to ``push_workers`` pushes in flight.

        A slot is refilled as soon as a push ends, so one slow endpoint holds one slot (at
        most PER_RECIPIENT), never a whole round. Nothing but cancellation ends the loop; on
        the way out the worker gives its leases back so a restart pushes them at once.
        """
        try:
            while not stop.is_set():
                self.wake.clear()  # before claiming: a wake-up during the claim is kept
                try:
                    await self._fill()
                except Exception:  # the store is unavailable for a moment, or a bug
                    log.exception("claiming pushes failed; trying again shortly")
                await self._wait(stop)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_leases(self.owner))

    async def _fill(self) -> None:
        free = self.settings.push_workers - len(self._running)
        if free <= 0:
            return
        # The pushes in flight hold live leases, which the claim counts against PER_RECIPIENT.
        jobs = await self.store.claim_pushes(
            self.owner, self.clock(), self.settings.lease_s, free, PER_RECIPIENT
        )
        for job in jobs:
            task = asyncio.create_task(self._push(job), name=f"push-{job.package_id}")
            self._running[task] = job
            task.add_done_callback(self._running.pop)

    async def _wait(self, stop: asyncio.Event) -> None:
        """Until a push ends, new work is committed, the poll interval passes, or stop."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
        try:
            await asyncio.wait(
                [*waiters, *self._running],
                timeout=IDLE_POLL_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _push(self, job: PushJob) -> None:
        """One push and its bookkeeping; never raises (a worker must outlive any one push)."""
        try:
            await self._deliver(job)
        except PushFailed as exc:
            await self._record_failure(job, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("push %s → %s failed unexpectedly", job.package_id, job.recipient)
            await self._record_failure(job, f"{type(exc).__name__}: {exc}")

    async def _record_failure(self, job: PushJob, error: str) -> None:
        try:
            await self._failed(job, error)
        except Exception:  # the lease expires and the push is tried again
            log.exception("could not record the failed push %s → %s", job.package_id, job.recipient)

    async def _deliver(self, job: PushJob) -> None:
        agency = await self.store.get_agency(job.recipient)
        if agency is None or not agency.active or not agency.endpoint:
            await self._give_up(job, f"{job.recipient} is revoked or has no push endpoint")
            return
        found = await self.store.get_package(job.package_id)
        if found is None:
            await self._give_up(job, "the package is gone")
            return
        current = await self.store.delivery(job.package_id, job.recipient)
        if current is None or current.state is not DeliveryState.QUEUED:
            return  # fetched or recalled since the claim: nothing to push any more
        await self._with_timeout(agency, job, found[1])
        await self.store.push_delivered(job, self.clock())
        self.on_event(PushOutcome.DELIVERED)
        log.info("pushed %s → %s", job.package_id, job.recipient)

    async def _with_timeout(self, agency: Agency, job: PushJob, body: bytes) -> None:
        try:
            async with asyncio.timeout(self.settings.push_timeout_s):
                await self.transport.push(agency, job.package_id, body)
        except TimeoutError as exc:
            raise PushFailed(f"no answer within {self.settings.push_timeout_s:g} s") from exc

    async def _failed(self, job: PushJob, error: str) -> None:
        now = self.clock()
        when = next_attempt(job.attempts + 1, now, self.policy, since=job.received_at)
        if isinstance(when, GiveUp):
            await self._give_up(job, f"{error}; {when.reason}")
            return
        log.info("push %s → %s failed (%s); retry at %s", job.package_id, job.recipient,
                 error, when.isoformat(timespec="seconds"))  # fmt: skip
        await self.store.push_failed(job, self.owner, now, error, when)
        self.on_event(PushOutcome.RETRY)

    async def _give_up(self, job: PushJob, reason: str) -> None:
        log.warning("push %s → %s gave up: %s", job.package_id, job.recipient, reason)
        await self.store.push_failed(job, self.owner, self.clock(), reason, None)
        self.on_event(PushOutcome.GAVE_UP)
