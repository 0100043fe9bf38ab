"""Runs a country of simulated agencies against a hub and counts what happened, honestly.

Senders sign and post the planned documents (retrying connection errors with the same bytes,
so a hub restart loses nothing); receivers pull their inboxes, fetch each package, acknowledge
it (status 01 or an ack) and answer with the business statuses the traffic model gives them,
each when the simulated clock reaches the office hours it takes (taking a document in the same
morning, handling it days later), as real agencies spread their answers; once the last document
is sent the clock stops, and the answers still due go at once, in order. The run ends when
every answer is posted and its recipient (the document's sender) has read it: the inboxes are
left empty, so a run pays for everything it sent and the next one starts clean.
Every agency goes through :class:`nodes.client.NodeClient`, exactly as real agency software.

Each agency writes the dialect of edXML its client was given (:mod:`axis.core.edxml_dialects`),
and about one document in a hundred is updated by its sender once accepted (a corrected
subject, BussinessDocumentInfo saying so); its recipients take the update and agree (15).

The counts: *accepted* is a 201 or 200; *refused* is any other answer, by problem type; *lost*
is an accepted document or update that some recipient never acknowledged by the end of the
drain; *duplicates* is a package a recipient was handed as new work after it had acknowledged
it. *documents* are the new documents; *deliveries* and *acknowledged* count the deliveries of
documents and updates alike, as the hub does (every edoc's).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import random
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from axis.core.clock import SimulatedClock
from axis.core.formats import Attachment, BusinessDocType, Edoc
from axis.errors import AxisError, Unreachable
from nodes.client import VIETNAM, NodeClient, Sent
from nodes.sim.traffic import Faults, PlannedDocument, TrafficModel

# progress(what, n): "sent" documents, "deliveries" now due (a document was accepted),
# "acknowledged" deliveries.
Progress = Callable[[str, int], None]
UNKNOWN_AGENCY = "000.00.00.Z99"  # no such agency: a broken package's extra recipient
POLL_S = 2.0  # how often an idle agency looks at its inbox without a hint
INBOX_PAGE = 100
GATHER_S = 1.0  # a woken receiver reads about this much later: one read carries what came meanwhile
# The national mix's agencies let more gather: statuses come back to the senders all day long.
# At the pace this machine replays the window (63 days in about three hours: 8 minutes of its
# clock a second) 3 s is under half an hour of the window's clock, as agency software polls.
NATIONAL_GATHER_S = 3.0
# Once sending has ended and no answer is left to post but the last few in flight, a receiver
# reads this soon: nothing more will gather.
LAST_GATHER_S = 0.25
# Statuses being posted at once: FEW_ANSWERERS while they keep up with the clock, up to
# ANSWERERS once the oldest due one has waited LATE_S. Eight alone fell behind at full rate: on
# 20,000 documents a third of the statuses were still due when sending ended, and their posting
# and reading took five minutes of drain; thirty-two keep up (the drain takes seconds). But
# thirty-two at once are a burst the hub queues a document behind: the warped clock makes
# answers due over some simulated minutes due in one step, and at half rate forty to seventy
# statuses went in a quarter of a second, the documents sent then waiting 100-250 ms.
FEW_ANSWERERS = 8
ANSWERERS = 32
LATE_S = 1.0
ANSWER_TICK_S = 0.05  # how often the answers look at the simulated clock


@dataclass
class Pace:
    """At most ``per_s`` events a second, one every ``1 / per_s`` seconds and no burst:
    :meth:`wait` tells the next one how long to wait, and books its turn.

    For a latency measurement at a given load (``axis bench``'s half rate): the warped clock
    turns a simulated morning's carried-over work (the registrations, 03, that the evening
    left) into one or two seconds of twice the day's rate, and the hub, at full load for
    their length, made the documents sent then wait up to 100 ms."""

    per_s: float
    _next: float = -math.inf

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until the next event's turn (0: at once)."""
        turn = max(self._next, now)
        self._next = turn + 1 / self.per_s
        return turn - now


DONE_WINDOW = 500_000  # acknowledgements remembered to recognise a package handed out again
# Packages read lately, verified once for all their recipients (a broadcast reaches 63
# provinces within seconds): the same bytes under the same trust read the same.
READ_CACHE = 1024


@dataclass
class Tally:
    """Everything the run counts. Its size stays bounded however long the run: a document
    leaves ``open`` once every recipient acknowledged it, and ``done`` keeps the latest
    DONE_WINDOW acknowledgements (a hub that handed a package out again would do it at the
    next look at the inbox, not after half a million others)."""

    sent: int = 0
    accepted: int = 0
    broken: int = 0  # sent broken on purpose (--faults): their refusal is the point
    updates: int = 0  # accepted updates (BussinessDocType 2) of accepted documents
    refused: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    acknowledged: int = 0
    statuses: int = 0
    status_codes: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    per_day: Counter[str] = field(default_factory=Counter)  # new documents accepted
    # as the hub counts its days: edocs accepted (updates too) and their deliveries
    sent_per_day: Counter[str] = field(default_factory=Counter)
    received_per_day: Counter[str] = field(default_factory=Counter)
    sent_by: Counter[str] = field(default_factory=Counter)
    received_by: Counter[str] = field(default_factory=Counter)
    # packages each dialect of edXML wrote, and how many the hub accepted
    dialect_sent: Counter[str] = field(default_factory=Counter)
    dialect_accepted: Counter[str] = field(default_factory=Counter)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    send_ms: array[float] = field(default_factory=lambda: array("d"))  # POST to its answer
    # package id -> (recipients still to acknowledge, when the hub took it)
    open: dict[str, tuple[set[str], float]] = field(default_factory=dict)
    # "package|recipient", oldest first. An OrderedDict, not a dict: a dict's oldest key,
    # once the window is full, is found by walking past every key deleted since the dict last
    # compacted (up to some 900,000 at this window): at the whole window's second half that
    # walk was a fifth of the simulated agencies' CPU. popitem(last=False) takes it at once.
    done: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @property
    def lost(self) -> int:
        return len(self.open)

    def opened(self, package_id: str, recipients: tuple[str, ...]) -> int:
        """An accepted edoc's deliveries are due; how many were acknowledged already."""
        if package_id in self.open:
            return 0  # a resend the hub answered with 200: the same package
        # A recipient may have read and acknowledged the package before its sender heard the
        # hub's answer (the answer was lost in a restart and the resend came later): that
        # acknowledgement was confirmed already, and counts now.
        early = [r for r in recipients if f"{package_id}|{r}" in self.done]
        self.acknowledged += len(early)
        self.latencies_ms.extend(0.0 for _ in early)
        waiting = set(recipients) - set(early)
        if waiting:
            self.open[package_id] = (waiting, time.perf_counter())
        return len(early)

    def acknowledged_by(self, package_id: str, recipient: str) -> bool:
        """A recipient's confirmed acknowledgement of an edoc: True the first time."""
        entry = self.open.get(package_id)
        if entry is None or recipient not in entry[0]:
            return False
        entry[0].discard(recipient)
        if not entry[0]:
            del self.open[package_id]
        self.acknowledged += 1
        self.latencies_ms.append((time.perf_counter() - entry[1]) * 1000)
        return True

    def count_day(self, day: str, recipients: int) -> None:
        """An edoc accepted on ``day`` of the simulation, with its deliveries."""
        self.sent_per_day[day] += 1
        self.received_per_day[day] += recipients

    def confirm(self, key: str) -> None:
        """Remember that the hub confirmed this acknowledgement."""
        self.done[key] = None
        if len(self.done) > DONE_WINDOW:
            self.done.popitem(last=False)


def _from_the_hub(exc: AxisError) -> bool:
    """A refusal the hub answered, or no answer at all: the work stays in the inbox for the
    next round. Anything else is a fault of the simulator's own, which must not hide."""
    return exc.remote or isinstance(exc, Unreachable)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


class Simulation:
    """One run: the clients of every agency, the plan, and the tally."""

    def __init__(
        self,
        clients: Mapping[str, NodeClient],
        model: TrafficModel,
        documents: int,
        concurrency: int = 8,
        drain_timeout_s: float = 120.0,  # with nothing moving: see _drain
        progress: Progress | None = None,
        faults: Faults | None = None,
        pace_per_s: float | None = None,
        gather_s: float = GATHER_S,
        clock: SimulatedClock | None = None,
        answer_pace_per_s: float | None = None,
    ) -> None:
        """``pace_per_s``: hand documents to the senders at this steady rate instead of as
        fast as ``concurrency`` senders can post them (a latency measurement below the
        maximum rate). ``answer_pace_per_s``: with it, post business statuses at most this
        many a second while documents are being sent (see :class:`Pace`). ``gather_s``: how
        long a receiver woken by new work lets more gather before it reads (fewer, fuller
        reads). ``clock``: the simulation's, which the clients tell the hub (a sender the time
        of the document it sends, the others the latest)."""
        self.gather_s = gather_s
        self._answer_pace = Pace(answer_pace_per_s) if answer_pace_per_s else None
        self.clock = clock or SimulatedClock()
        self.clients = clients
        self.pace_per_s = pace_per_s
        self.faults = faults or Faults()
        self.model = model
        self.documents = documents
        self.concurrency = concurrency
        self.drain_timeout_s = drain_timeout_s
        self.progress = progress or (lambda what, n: None)
        self.tally = Tally()
        self._sending_done = asyncio.Event()
        # A hint for each agency's receiver that its inbox has new work (it still pulls through
        # the API; without the hint it polls every POLL_S, as agency software does).
        self._wake = {organ_id: asyncio.Event() for organ_id in clients}
        # Each agency's own rhythm of reading (agency software does not look in step).
        self._rhythm = {organ_id: random.Random(f"{model.seed}:{organ_id}") for organ_id in clients}
        # Statuses still to send: (due on the simulated clock, a tie-break, the recipient that
        # answers, the edoc it answers without its attachments, the codes left in order).
        self._due: list[tuple[datetime, int, str, Edoc, tuple[str, ...]]] = []
        self._numbered = itertools.count()
        self._read_lately: OrderedDict[tuple[str, str | None], Edoc] = OrderedDict()
        self._taken = 0  # packages read from the inboxes: the drain's sign of life
        self._handling = 0  # reads being handled (their answers are not all scheduled yet)
        self._receiving_done = asyncio.Event()  # the receivers ended (or were stopped)
        # Every answer is posted: the receivers' last read takes them, and they end.
        self._answered = asyncio.Event()

    async def sent(self) -> None:
        """Until every document of the run has been sent (the drain may still be going on)."""
        await self._sending_done.wait()

    async def run(self) -> Tally:
        started = time.perf_counter()
        # One fetch of the hub's directory names every recipient for every agency.
        directory = await next(iter(self.clients.values())).directory()
        for client in self.clients.values():
            client.prime(directory)
        receivers = [asyncio.create_task(self._receive(organ_id)) for organ_id in self.clients]
        answering = asyncio.create_task(self._answering())
        try:
            await self._send_all()
            self._sending_done.set()
            for wake in self._wake.values():  # idle receivers see at once that they are done
                wake.set()
            await self._drain(receivers)
        except TimeoutError:
            pass  # what is still open counts as lost
        finally:
            for task in receivers:
                task.cancel()
            await asyncio.gather(*receivers, return_exceptions=True)
            self._receiving_done.set()
            if not self._sending_done.is_set():  # the run failed: its answers go with it
                answering.cancel()
                await asyncio.gather(answering, return_exceptions=True)
        await answering  # the answers still due, sent now in order (the clock has stopped)
        self.elapsed_s = time.perf_counter() - started
        return self.tally

    async def _drain(self, receivers: list[asyncio.Task[None]]) -> None:
        """Wait for the receivers to end while the run still moves. The last answers and
        their reads can take minutes on a long run (a third of the statuses of 20,000
        documents come due after the last one is sent); drain_timeout_s with nothing read,
        acknowledged or answered ends the run, and what is open then counts as lost."""
        ended = asyncio.gather(*receivers)
        moved = -1
        try:
            while (now := self._taken + self.tally.acknowledged + self.tally.statuses) != moved:
                moved = now
                try:
                    async with asyncio.timeout(self.drain_timeout_s):
                        await asyncio.shield(ended)
                    return
                except TimeoutError:
                    continue
            raise TimeoutError
        finally:
            if not ended.done():
                ended.cancel()  # the receivers with it (run() stops them anyway)

    # -- sending ----------------------------------------------------------------------------

    async def _send_all(self) -> None:
        queue: asyncio.Queue[PlannedDocument | None] = asyncio.Queue(maxsize=self.concurrency * 4)

        async def sender() -> None:
            while (planned := await queue.get()) is not None:
                await self._send(planned)

        workers = [asyncio.create_task(sender()) for _ in range(self.concurrency)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for i, planned in enumerate(self.model.documents(self.documents)):
                if self.pace_per_s:
                    await asyncio.sleep(max(0.0, start + i / self.pace_per_s - loop.time()))
                await queue.put(planned)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            # Stopped on the way (cancelled, a sender failed): the senders stop with it. Left
            # running they sent on, and woke receivers that were being stopped.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _send(self, planned: PlannedDocument) -> None:
        with self.clock.at(planned.sent_at.replace(tzinfo=VIETNAM)):
            await self._send_at(planned)

    async def _send_at(self, planned: PlannedDocument) -> None:
        client = self.clients[planned.sender]
        rng = random.Random(f"{self.model.seed}:body:{planned.n}")
        attachment = Attachment(
            "cid:1", f"van-ban-{planned.n}.pdf", "application/pdf",
            b"%PDF-1.4\n" + rng.randbytes(planned.attachment_bytes),
        )  # fmt: skip
        broken = self.faults.broken(self.model.seed, planned.n)
        self.tally.broken += bool(broken)
        recipients = planned.recipients
        if broken == "unknown-recipient":
            recipients = (*recipients, UNKNOWN_AGENCY)
        # Signing a package of this size takes about a millisecond: cheaper inline than a
        # thread hop, and the simulated agencies share one event loop anyway.
        package = client.build_edoc(
            recipients,
            planned.subject,
            number=planned.n,
            notation="SIM",
            priority=planned.priority,
            attachments=(attachment,),
            at=planned.sent_at,
        )
        if broken == "bad-signature":  # changed after signing, as a faulty relay would
            subject = planned.subject.encode()
            package = package.replace(subject, subject + b" [!]", 1)
        self.tally.sent += 1
        posted = time.perf_counter()
        sent = await self._post(client, package)
        if sent is None:
            self.progress("sent", 1)
            return
        t = self.tally
        t.send_ms.append((time.perf_counter() - posted) * 1000)
        t.accepted += 1
        t.per_day[planned.sent_at.date().isoformat()] += 1
        t.count_day(planned.sent_at.date().isoformat(), len(planned.recipients))
        t.sent_by[planned.sender] += 1
        for recipient in planned.recipients:
            t.received_by[recipient] += 1
        self._deliver(sent.answer["id"], planned.recipients)
        self.progress("sent", 1)
        if planned.updated and not broken:
            await self._update(client, planned, package)

    async def _post(self, client: NodeClient, package: bytes) -> Sent | None:
        """Post one package, counting it under its dialect; None if the hub refused it."""
        t = self.tally
        t.dialect_sent[client.dialect.name] += 1
        try:
            sent = await client.post_package(package)
        except AxisError as exc:
            if not exc.remote:
                raise
            t.refused[exc.problem_name] += 1
            return None
        t.dialect_accepted[client.dialect.name] += 1
        return sent

    def _deliver(self, package_id: str, recipients: tuple[str, ...]) -> None:
        """An accepted edoc's deliveries are due: count them, wake their recipients."""
        self.tally.deliveries += len(recipients)
        early = self.tally.opened(package_id, recipients)
        self.progress("deliveries", len(recipients))
        if early:
            self.progress("acknowledged", early)
        for recipient in recipients:
            self._wake[recipient].set()

    async def _update(self, client: NodeClient, planned: PlannedDocument, original: bytes) -> None:
        """The sender corrects the document's subject: an update to the same recipients,
        saying in BussinessDocumentInfo that the document changed."""
        edoc = client.read(original)
        assert isinstance(edoc, Edoc)
        package = client.build_followup(
            edoc, BusinessDocType.UPDATE, "Sửa trích yếu", subject=f"{planned.subject} (sửa)"
        )
        sent = await self._post(client, package)
        if sent is not None:
            self.tally.updates += 1
            self.tally.count_day(planned.sent_at.date().isoformat(), len(planned.recipients))
            self._deliver(sent.answer["id"], planned.recipients)

    # -- receiving --------------------------------------------------------------------------

    def _offline(self, organ_id: str) -> bool:
        if organ_id not in self.faults.offline:
            return False
        done = self.tally.sent / max(1, self.documents)
        return self.faults.offline_from <= done < self.faults.offline_until

    async def _receive(self, organ_id: str) -> None:
        """The agency's receiving side: read the inbox with the packages in it, handle them,
        acknowledge them in one request, then answer with business statuses; sleep until a
        hint (or POLL_S), and let work gather for ``gather_s`` before the next read."""
        client = self.clients[organ_id]
        wake = self._wake[organ_id]
        while True:
            if self._offline(organ_id):
                await asyncio.sleep(0.2)  # its software is down: nobody reads the inbox
                continue
            wake.clear()
            # Told before the read: a status posted while it runs is taken by the next one.
            last = self._answered.is_set()
            try:
                items = (await client.take(limit=INBOX_PAGE))["items"]
            except AxisError as exc:
                if not _from_the_hub(exc):
                    raise
                items = []
            if items:
                self._taken += len(items)
                await self._handle_all(client, organ_id, items)
            if len(items) == INBOX_PAGE:
                continue  # a full page: there is probably more
            if last:
                return  # everything acknowledged and answered, and this read took the rest
            try:
                async with asyncio.timeout(POLL_S):
                    await wake.wait()
            except TimeoutError:
                continue
            if self.gather_s and not self._answered.is_set():
                # More is probably on its way: one read a little later carries it all (the
                # last answers too, posted at once after sending ends). Each agency waits a
                # while of its own (half to one and a half of it), so the recipients of a
                # broadcast do not all read at the same instant.
                gather = self.gather_s
                if self._sending_done.is_set() and not self._due:
                    gather = min(gather, LAST_GATHER_S)
                await asyncio.sleep(gather * (0.5 + self._rhythm[organ_id].random()))

    async def _handle_all(
        self, client: NodeClient, organ_id: str, items: list[dict[str, Any]]
    ) -> None:
        """One read's packages: each read and checked; a document whose first answer is 01
        acknowledged by that status, the rest in one batch; then the business statuses of
        those acknowledged are scheduled. What the hub refuses or cannot take stays in the
        inbox for the next read."""
        self._handling += 1
        try:
            await self._handle_read(client, organ_id, items)
        finally:
            self._handling -= 1

    async def _handle_read(
        self, client: NodeClient, organ_id: str, items: list[dict[str, Any]]
    ) -> None:
        to_ack: dict[str, tuple[Edoc, tuple[str, ...]] | None] = {}  # None: a status
        answer_next: list[tuple[Edoc, tuple[str, ...]]] = []
        for item in items:
            if organ_id in self.faults.slow:
                await asyncio.sleep(self.faults.slow_s)
            # Checking a package takes a millisecond or two on this shared loop: between two,
            # let the senders' answers in (a page of 40 checked in one go held them 60 ms).
            await asyncio.sleep(0)
            try:
                answered = await self._handle(client, organ_id, item, to_ack)
            except AxisError as exc:
                if not _from_the_hub(exc):
                    raise
                continue  # still in the inbox: handled on a later read
            if answered is not None:
                answer_next.append(answered)
        if to_ack:
            try:
                acknowledged = (await client.ack_many(list(to_ack)))["acknowledged"]
            except AxisError as exc:
                if not _from_the_hub(exc):
                    raise
                acknowledged = []
            for package_id in acknowledged:
                planned = to_ack[package_id]
                self._confirmed(package_id, organ_id, edoc=planned is not None)
                if planned is not None:
                    answer_next.append(planned)
        now = self.clock()
        for edoc, codes in answer_next:
            self._schedule(organ_id, edoc, codes, now)

    async def _handle(
        self,
        client: NodeClient,
        organ_id: str,
        item: dict[str, Any],
        to_ack: dict[str, tuple[Edoc, tuple[str, ...]] | None],
    ) -> tuple[Edoc, tuple[str, ...]] | None:
        """One package: put on ``to_ack`` with what to answer once acknowledged, or
        acknowledged here by status 01 (then: the edoc and the codes still to send)."""
        package_id = item["id"]
        if f"{package_id}|{organ_id}" in self.tally.done:
            # The hub confirmed this ack (204, or 201 for status 01), yet hands the package
            # out again as new work: that is a duplicate. Ack again; do not redo the work.
            self.tally.duplicates += 1
            to_ack[package_id] = None
            return None
        edoc = await self._read(client, item)
        if edoc is None:
            to_ack[package_id] = None
            return None
        codes = self._answers(edoc, organ_id)
        if codes[:1] != ("01",):
            to_ack[package_id] = (edoc, codes)
            return None
        await self._status(client, edoc, "01")  # 01 acknowledges
        self._confirmed(package_id, organ_id, edoc=True)
        return edoc, codes[1:]

    def _schedule(self, organ_id: str, edoc: Edoc, codes: tuple[str, ...], after: datetime) -> None:
        """``organ_id`` will answer ``edoc`` with ``codes``, the first some office hours after
        ``after`` (on the simulated clock), each of the others after the one before."""
        if not codes:
            return
        due = self.model.answered_at(
            edoc.document_id, organ_id, codes[0], after.astimezone(VIETNAM)
        )
        # What a status is built from, not the files (thousands wait at once on a long run).
        kept = replace(edoc, attachments=(), recipients=(), content=None, traces=())
        heapq.heappush(self._due, (due, next(self._numbered), organ_id, kept, codes))

    async def _answering(self) -> None:
        """Send each scheduled status once the simulated clock reaches it, FEW_ANSWERERS at a
        time, up to ANSWERERS once they fall behind; once sending is done, every one left at
        once in order of when it is due. Ends, and tells the receivers to take their last
        read, when nothing is left to answer and nothing more can be: every delivery
        acknowledged and no read still being handled (or the receivers were stopped)."""
        posting: set[asyncio.Task[None]] = set()
        late_since: float | None = None  # since when the oldest due answer has been due
        loop = asyncio.get_running_loop()
        try:
            while True:
                for task in [t for t in posting if t.done()]:
                    posting.discard(task)
                    task.result()  # a fault of the simulator's own must not hide
                if not self._due:
                    late_since = None
                    if not posting and (self._receiving_done.is_set() or self._all_taken()):
                        self._answered.set()
                        for wake in self._wake.values():
                            wake.set()
                        return
                    await asyncio.sleep(ANSWER_TICK_S)
                    continue
                if not self._sending_done.is_set() and self._due[0][0] > self.clock():
                    late_since = None  # caught up
                    await asyncio.sleep(ANSWER_TICK_S)
                    continue
                if late_since is None:
                    late_since = loop.time()
                behind = self._sending_done.is_set() or loop.time() - late_since >= LATE_S
                if len(posting) >= (ANSWERERS if behind else FEW_ANSWERERS):
                    await asyncio.wait(
                        posting, timeout=ANSWER_TICK_S, return_when=asyncio.FIRST_COMPLETED
                    )
                    continue
                if self._answer_pace is not None and not self._sending_done.is_set():
                    wait = self._answer_pace.wait(loop.time())
                    if wait > 0:
                        await asyncio.sleep(wait)
                due, _, organ_id, edoc, codes = heapq.heappop(self._due)
                posting.add(asyncio.create_task(self._answer(organ_id, edoc, codes, due)))
        finally:
            for task in posting:
                task.cancel()

    def _all_taken(self) -> bool:
        """Sending is done and every delivery acknowledged, its answers scheduled."""
        return self._sending_done.is_set() and not self.tally.open and not self._handling

    async def _answer(
        self, organ_id: str, edoc: Edoc, codes: tuple[str, ...], due: datetime
    ) -> None:
        """The first of ``codes`` at ``due``, and the rest scheduled; a refusal ends them."""
        with self.clock.at(due):
            try:
                await self._status(self.clients[organ_id], edoc, codes[0])
            except AxisError as exc:
                if not _from_the_hub(exc):
                    raise
                return
        self._schedule(organ_id, edoc, codes[1:], due)

    async def _read(self, client: NodeClient, item: dict[str, Any]) -> Edoc | None:
        """The item's edoc, read and checked as the hub vouched for it (fetched alone when
        the read did not carry it); None for a status.

        The agencies of a run share one process and one trust: a package its other recipients
        read lately (the same bytes, by their sha256, with the same notes) was verified once
        for them all. Verifying is half of what the simulated agencies spend, and a document
        goes to 3.6 recipients on average."""
        body = item.get("body")
        if body is None:
            body, notes = await client.fetch(item["id"])
        else:
            notes = item.get("notes")
        if item["kind"] == "status":
            return None
        key = hashlib.sha256(body).hexdigest(), notes
        edoc = self._read_lately.get(key)
        if edoc is None:
            read = await client.verified(body, notes)
            assert isinstance(read, Edoc)
            edoc = self._read_lately[key] = read
            if len(self._read_lately) > READ_CACHE:
                self._read_lately.popitem(last=False)
        return edoc

    def _answers(self, edoc: Edoc, organ_id: str) -> tuple[str, ...]:
        if edoc.business.doc_type is BusinessDocType.UPDATE:
            return ("15",)  # the update is taken: it agrees (15)
        return self.model.statuses(edoc.document_id, organ_id)

    def _confirmed(self, package_id: str, organ_id: str, edoc: bool) -> None:
        """The hub confirmed the acknowledgement of one package."""
        if edoc and self.tally.acknowledged_by(package_id, organ_id):
            self.progress("acknowledged", 1)
        self.tally.confirm(f"{package_id}|{organ_id}")

    async def _status(self, client: NodeClient, edoc: Edoc, code: str) -> None:
        package = client.build_status(edoc, code)
        self.tally.dialect_sent[client.dialect.name] += 1
        await client.post_package(package)
        self.tally.dialect_accepted[client.dialect.name] += 1
        self._wake[edoc.sender.organ_id].set()
        self.tally.statuses += 1
        self.tally.status_codes[code] += 1

    # -- the summary ------------------------------------------------------------------------

    def summary(self, failed: int = 0) -> dict[str, Any]:
        """SPEC §8's summary of the run; ``failed`` (pushes that gave up) comes from the hub."""
        t = self.tally
        elapsed = round(getattr(self, "elapsed_s", 0.0), 2)
        return {
            "documents_sent": t.sent,
            "documents_accepted": t.accepted,
            # As the axis counts (nodes.sim.report.CONVENTION): edocs sent (updates too),
            # deliveries received, and the two together.
            "sent": t.accepted + t.updates,
            "received": t.deliveries,
            "sent_and_received": t.accepted + t.updates + t.deliveries,
            "updates": t.updates,
            "deliveries": t.deliveries,
            "acknowledged": t.acknowledged,
            "failed": failed,
            "statuses": t.statuses,
            "lost": t.lost,
            "duplicates": t.duplicates,
            # Documents the hub refused that were not broken on purpose: a run with any is
            # not valid (an agency unknown to the hub, a hub on another database…).
            "refused": max(0, t.sent - t.accepted - t.broken),
            "elapsed_s": elapsed,
            "docs_per_s": round(t.accepted / elapsed, 1) if elapsed else 0.0,
            "latency_ms": percentiles(t.latencies_ms),
            "dialects": {
                name: {"sent": n, "accepted": t.dialect_accepted[name]}
                for name, n in sorted(t.dialect_sent.items())
            },
        }
