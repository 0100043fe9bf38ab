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
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from axis.config import Settings
from axis.core.retry import GiveUp, RetryPolicy, next_attempt
from axis.errors import AxisError
from axis.store.base import Agency, PushJob, Store

log = logging.getLogger("axis.delivery")

IDLE_POLL_S = 1.0  # how often an idle worker looks for retries that came due


class PushError(Exception):
    """One push did not get a 2xx: the reason, for the delivery's last_error."""


class PushTransport(Protocol):
    """How a package reaches an agency's endpoint. Tests and the simulator plug in others."""

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        """Deliver ``body``; return on a 2xx, raise PushError otherwise."""

    async def close(self) -> None:
        """Release connections."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeliveryWorker:
    """Pushes due deliveries until stopped; several may run on one store."""

    def __init__(
        self,
        store: Store,
        transport: PushTransport,
        settings: Settings,
        wake: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.transport = transport
        self.settings = settings
        self.policy: RetryPolicy = settings.retry_policy()
        self.wake = wake or asyncio.Event()
        self.clock = clock
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._slots = asyncio.Semaphore(settings.push_workers)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and push until ``stop`` is set. Errors in one round do not end the loop."""
        while not stop.is_set():
            try:
                pushed = await self.run_once()
            except AxisError as exc:  # the store is unavailable for a moment
                log.warning("delivery round failed: %s", exc.detail)
                pushed = 0
            if pushed == 0:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        self.wake.clear()
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
        try:
            await asyncio.wait(waiters, timeout=IDLE_POLL_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def run_once(self) -> int:
        """One round: claim what is due and push it, at most ``push_workers`` at a time."""
        jobs = await self.store.claim_pushes(
            self.owner, self.clock(), self.settings.lease_s, self.settings.push_workers * 2
        )
        await asyncio.gather(*(self._push(job) for job in jobs))
        return len(jobs)

    async def _push(self, job: PushJob) -> None:
        async with self._slots:
            try:
                await self._deliver(job)
            except PushError as exc:
                await self._failed(job, str(exc))
            except AxisError as exc:
                log.warning("push %s → %s: %s", job.package_id, job.recipient, exc.detail)

    async def _deliver(self, job: PushJob) -> None:
        agency = await self.store.get_agency(job.recipient)
        if agency is None or not agency.active or not agency.endpoint:
            await self._give_up(job, f"{job.recipient} is revoked or has no push endpoint")
            return
        found = await self.store.get_package(job.package_id)
        if found is None:
            await self._give_up(job, "the package is gone")
            return
        await self._with_timeout(agency, job, found[1])
        await self.store.push_delivered(job, self.clock())
        log.info("pushed %s → %s", job.package_id, job.recipient)

    async def _with_timeout(self, agency: Agency, job: PushJob, body: bytes) -> None:
        try:
            async with asyncio.timeout(self.settings.push_timeout_s):
                await self.transport.push(agency, job.package_id, body)
        except TimeoutError as exc:
            raise PushError(f"no answer within {self.settings.push_timeout_s:g} s") from exc

    async def _failed(self, job: PushJob, error: str) -> None:
        now = self.clock()
        when = next_attempt(job.attempts + 1, now, self.policy, since=job.received_at)
        if isinstance(when, GiveUp):
            await self._give_up(job, f"{error}; {when.reason}")
            return
        log.info("push %s → %s failed (%s); retry at %s", job.package_id, job.recipient,
                 error, when.isoformat(timespec="seconds"))  # fmt: skip
        await self.store.push_failed(job, self.owner, now, error, when)

    async def _give_up(self, job: PushJob, reason: str) -> None:
        log.warning("push %s → %s gave up: %s", job.package_id, job.recipient, reason)
        await self.store.push_failed(job, self.owner, self.clock(), reason, None)
