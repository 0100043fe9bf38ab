"""``axis bench --scenario seed-2020``: the national mix, measured.

The point-to-point bench (:mod:`nodes.sim.bench`) measures the pipeline alone: one recipient,
no business status. This one runs what ``axis simulate --scenario seed-2020`` runs, the 95
agencies of the launch window with the calibrated recipient mix (about 3.6 receipts per
document), their business statuses, updates and every dialect of edXML, through a real
``axis serve`` over TLS, and counts what a document costs there:

- documents/s, and the hub's and the simulated agencies' CPU per document (from /proc:
  steadier than rates on a shared machine);
- how busy the event loops were: the main thread of the hub's process (of its busiest worker)
  and of the agencies' process, each a share of one core, which is its ceiling (the rest of
  the machine's cores, "cores busy", is the other);
- requests per document by route, and new connections (TLS handshakes) per document, as the
  agencies' transports counted them;
- signed packages per document (documents, updates and statuses the agencies signed);
- the hub's resident memory as the run goes (it must stay flat);
- the send latency (POST to its answer) at half the measured rate, and at full rate; beside
  it, the half-rate stage's POSTs as the hub timed them until its last document was sent
  (its ``axis_request_seconds`` histogram, from handler entry to answer, statuses among
  them: what the hub's loop, verification and store add, without TLS, the network and the
  simulated agencies' own loop);
- the projected time of the whole window (its documents at the measured rate);
- the contract's floor (:mod:`nodes.sim.contract`): each step the contract requires (sign,
  take, receipt, row, request), timed in this process with the hub's and the agencies' own
  code just before the run, weighed by the run's mix; the whole window at that floor with
  every core of the machine busy and nothing else running; and the floor with the checks the
  run's agencies add (each receipt checked, each document verified once);
- this machine's speed at the time: the floor's CPU part (:func:`nodes.sim.bench.floor`:
  one package signed and verified in one process; its store waits on the disk) just before
  the hub starts, and each CPU figure in floors. This machine's speed moved by 1.7 times
  from one day to the next, and by 15 % between runs minutes apart; in floors, runs of
  different days compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from axis.host import runtime
from nodes.sim.bench import (
    cpu_s,
    floor,
    hub_processes,
    loop_cpu_s,
    open_sockets,
    own_peak_rss_mb,
    stage_progress,
    status_mb,
)
from nodes.sim.contract import ContractCosts, contract_costs
from nodes.sim.runner import NATIONAL_GATHER_S, Simulation, Tally, percentiles
from nodes.sim.simulate import DEFAULT_MIX, Site, agencies_for, clients_of, own_hub
from nodes.sim.traffic import (
    PUBLISHED_DOCUMENTS,
    TrafficModel,
    days,
    dialects_of,
    documents_for,
)
from nodes.transport import Meter

# progress(stage, done, total): "mix" (documents sent at full rate), "paced" (at half rate)
MixProgress = Callable[[str, int, int], None]

# The half-rate run lasts about this long (or the whole N, if that is less). Its p99 rests on
# the slowest 1 % of its sends: over 30 s, four or five of about 450, and single runs of
# 4,000 documents put it anywhere from 69 to 197 ms.
PACED_S = 60.0
CLIENT_RETRIES = 20
RSS_EVERY_S = 1.0  # how often the hub's resident memory is sampled
WINDOW_DOCUMENTS = documents_for(PUBLISHED_DOCUMENTS)  # the launch window, as documents sent
FLOOR_PACKAGES = 400  # the speed check before the run: about half a second
# The half-rate stage posts business statuses at most this much above their rate of the full
# stage: under it, the simulated mornings' carried-over work is spread over a few seconds
# instead of one or two at twice the rate, so the load stays about half of what the hub
# carried; with no margin, answers that fell behind would never catch up.
ANSWER_HEADROOM = 1.25


@dataclass(frozen=True)
class MixResult:
    """One run of the national mix."""

    documents: int
    per_s: float
    elapsed_s: float
    hub_cpu_ms: float
    agencies_cpu_ms: float
    requests: dict[str, int]  # by route, over the full-rate run
    connections: int  # new TLS connections the agencies opened in the full-rate run
    signed: int  # packages the agencies signed and the hub accepted (documents, updates, statuses)
    deliveries: int
    send_ms: dict[str, float | None]  # POST → answer at half rate
    saturated_send_ms: dict[str, float | None]
    paced_per_s: float
    paced_documents: int
    hub_rss_mb: list[tuple[int, float]]  # (documents accepted so far, the hub's RSS in MB)
    # (documents accepted so far, the sockets the hub holds open): each TLS connection keeps
    # read buffers of its own (the agencies' 190 hold about 47 MB of the hub's RSS)
    hub_sockets: list[tuple[int, int]]
    agencies_peak_rss_mb: float
    lost: int
    duplicates: int
    refused: int
    hub: str = ""
    # the PostgreSQL server's CPU per document (every postgres process here), when it ran on
    # PostgreSQL: the hub's own figure leaves the database out
    database_cpu_ms: float | None = None
    # the half-rate sends as the hub timed them (upper edges of its histogram's buckets);
    # None with several workers (the operator's port answers for one of them)
    hub_send_ms: dict[str, float | None] | None = None
    # the floor's sign and verify just before the run, ms a package: the machine's speed, by
    # which the CPU figures are divided to compare days
    floor_ms: float | None = None
    # The event-loop threads' share of one core at full rate (their CPU over the stage's
    # wall time): the busiest hub worker's, and the agencies' process's. Each is one
    # thread, so near 1.0 it is the ceiling, whatever the cores busy leave free.
    hub_loop_busy: float | None = None
    agencies_loop_busy: float | None = None
    # The contract's steps, each timed in this process just before the run
    # (:mod:`nodes.sim.contract`), and their sum for this run's mix, ms a document: the floor
    # of a document's CPU, hub and agencies together, that no implementation goes below; and
    # with the checks the run's agencies add (each receipt, each document verified once).
    contract: ContractCosts | None = None
    contract_ms_per_doc: float | None = None
    checked_ms_per_doc: float | None = None

    @property
    def requests_per_document(self) -> float:
        return sum(self.requests.values()) / max(1, self.documents)

    @property
    def projected_window_s(self) -> float:
        """The whole launch window (about 274,000 documents) at this rate."""
        return WINDOW_DOCUMENTS / self.per_s if self.per_s else float("inf")

    @property
    def contract_window_s(self) -> float | None:
        """The whole window at the contract's floor with every core of this machine busy:
        what no implementation could beat here."""
        if self.contract_ms_per_doc is None:
            return None
        return WINDOW_DOCUMENTS * self.contract_ms_per_doc / 1000 / len(os.sched_getaffinity(0))

    @property
    def cores_busy(self) -> float:
        """The cores the hub, its database server and the agencies kept busy together at full
        rate: their CPU per document times documents a second. Against the machine's cores,
        what is left is all that another hub worker could use."""
        cpu_ms = self.hub_cpu_ms + (self.database_cpu_ms or 0.0) + self.agencies_cpu_ms
        return cpu_ms * self.per_s / 1000

    def _floors(self, ms: float) -> float | None:
        """``ms`` of CPU in floors: this machine's speed taken out."""
        return None if not self.floor_ms else round(ms / self.floor_ms, 2)

    def rss_at(self, documents: int) -> float | None:
        """The hub's RSS at the first sample with at least ``documents`` accepted."""
        return next((mb for n, mb in self.hub_rss_mb if n >= documents), None)

    def sockets_at(self, documents: int) -> int | None:
        """The hub's open sockets at the first sample with at least ``documents`` accepted."""
        return next((k for n, k in self.hub_sockets if n >= documents), None)

    def as_json(self) -> dict[str, Any]:
        n = max(1, self.documents)
        tenths = range(max(1, n // 10), n + 1, max(1, n // 10))
        return {
            "scenario": "seed-2020",
            "documents": self.documents,
            "docs_per_s": round(self.per_s, 1),
            "hub_cpu_ms_per_doc": round(self.hub_cpu_ms, 2),
            "database_cpu_ms_per_doc": (
                None if self.database_cpu_ms is None else round(self.database_cpu_ms, 2)
            ),
            "agencies_cpu_ms_per_doc": round(self.agencies_cpu_ms, 2),
            "cores_busy": round(self.cores_busy, 2),
            "cores": len(os.sched_getaffinity(0)),
            "hub_loop_busy": _round(self.hub_loop_busy),
            "agencies_loop_busy": _round(self.agencies_loop_busy),
            "requests_per_doc": round(self.requests_per_document, 2),
            "requests_per_doc_by_route": {
                route: round(count / n, 3) for route, count in sorted(self.requests.items())
            },
            "tls_handshakes_per_doc": round(self.connections / n, 4),
            "signed_packages_per_doc": round(self.signed / n, 2),
            "deliveries_per_doc": round(self.deliveries / n, 2),
            "p50_ms": self.send_ms["p50"],
            "p99_ms": self.send_ms["p99"],
            "saturated_p99_ms": self.saturated_send_ms["p99"],
            "hub_p50_ms": None if self.hub_send_ms is None else self.hub_send_ms["p50"],
            "hub_p99_ms": None if self.hub_send_ms is None else self.hub_send_ms["p99"],
            "hub_rss_mb_first": self.hub_rss_mb[0][1] if self.hub_rss_mb else None,
            "hub_rss_mb_at_1000": self.rss_at(1000),
            "hub_rss_mb_last": self.hub_rss_mb[-1][1] if self.hub_rss_mb else None,
            "hub_rss_mb_peak": max((mb for _, mb in self.hub_rss_mb), default=None),
            # the hub's RSS as the run went: at every tenth of its documents
            "hub_rss_mb_series": {k: self.rss_at(k) for k in tenths},
            "hub_sockets_series": {k: self.sockets_at(k) for k in tenths},
            "floor_ms_per_package": None if self.floor_ms is None else round(self.floor_ms, 3),
            "hub_cpu_floors_per_doc": self._floors(self.hub_cpu_ms),
            "agencies_cpu_floors_per_doc": self._floors(self.agencies_cpu_ms),
            "database_cpu_floors_per_doc": (
                None if self.database_cpu_ms is None else self._floors(self.database_cpu_ms)
            ),
            "projected_window_min": round(self.projected_window_s / 60, 1),
            "contract_ms_per_doc": _round(self.contract_ms_per_doc),
            "contract_window_min": (
                None if self.contract_window_s is None else round(self.contract_window_s / 60, 1)
            ),
            "checked_ms_per_doc": _round(self.checked_ms_per_doc),
            "contract_steps_ms": None if self.contract is None else self.contract.as_json(),
            "window_documents": WINDOW_DOCUMENTS,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "hub": self.hub,
        }


@dataclass
class _RssWatch:
    pids: list[int]
    tally: Callable[[], Tally]
    database: _DatabaseCpu | None = None
    samples: list[tuple[int, float]] = field(default_factory=list)
    sockets: list[tuple[int, int]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RSS_EVERY_S)

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            rss = sum(status_mb(pid, "VmRSS") for pid in self.pids)
            sockets = sum(open_sockets(pid) for pid in self.pids)
            accepted = self.tally().accepted
            self.samples.append((accepted, round(rss, 1)))
            self.sockets.append((accepted, sockets))
        if self.database is not None:
            self.database.sample()


async def bench_mix(
    documents: int,
    *,
    attachment_kb: float = 20,
    concurrency: int = 8,
    seed: int = 2020,
    db: str | None = None,
    workers: int = 1,
    progress: MixProgress | None = None,
    settle: bool = False,
) -> MixResult:
    """The national mix through a real hub: ``documents`` at full rate, then half that rate
    for about PACED_S seconds (see the module doc). ``db``: an empty PostgreSQL database for
    the hub instead of SQLite, served by ``workers`` processes. ``settle``: as for
    :func:`nodes.sim.simulate.simulate` (``axis bench`` sets it)."""
    report = progress or (lambda stage, done, total: None)
    # Before anything else runs: the machine's speed now, in one process on a quiet machine.
    measured = await asyncio.to_thread(floor, FLOOR_PACKAGES, attachment_kb)
    chosen = agencies_for("seed-2020", None)
    settings = {"database": db} if db else {}
    meter = Meter()
    async with (
        own_hub(chosen, push=False, workers=workers, settings=settings) as site,
        clients_of(
            site,
            chosen,
            written=dialects_of(chosen, DEFAULT_MIX, seed),
            retries=CLIENT_RETRIES,
            seed=seed,
            meter=meter,
        ) as clients,
    ):
        if settle:  # the agencies' set-up, out of every full collection's walk
            runtime.settle_heap()
        hub_settings = site.data.settings()
        # Before any traffic: the contract's own steps, on two of the run's agencies.
        first, second = (clients[a.organ_id] for a in chosen[:2])
        costs = await contract_costs(first, second, site.data, attachment_kb)
        assert site.pid is not None
        hub_pids = hub_processes(site.pid)
        full = Simulation(
            clients,
            TrafficModel(chosen, seed, attachment_kb),
            documents,
            concurrency,
            gather_s=NATIONAL_GATHER_S,
            progress=stage_progress(report, "mix", documents, "sent"),
        )
        server = _DatabaseCpu(urlsplit(db).path.lstrip("/")) if db else None
        watch = _RssWatch(hub_pids, lambda: full.tally, server)
        if server is not None:
            server.sample()
        watcher = asyncio.create_task(watch.run())
        cpu_before = cpu_s(hub_pids), cpu_s([os.getpid()])
        loops_before = loop_cpu_s([*hub_pids, os.getpid()])
        try:
            tally = await full.run()
            watch.sample()
        finally:
            watcher.cancel()
        loops = [
            (now - then) / full.elapsed_s
            for now, then in zip(loop_cpu_s([*hub_pids, os.getpid()]), loops_before, strict=True)
        ]
        n = max(1, tally.accepted)
        hub_cpu = (cpu_s(hub_pids) - cpu_before[0]) / n * 1000
        own_cpu = (cpu_s([os.getpid()]) - cpu_before[1]) / n * 1000
        database_cpu = None if server is None else server.used_s / n * 1000
        requests, connections = dict(meter.requests), meter.connections
        rate = tally.accepted / full.elapsed_s
        paced_n = max(1, min(documents, int(rate / 2 * PACED_S)))
        # As many documents a simulated day as the full stage sent: the same N over the whole
        # window would move its clock hours a document, and each document would release at
        # once every answer that came due meanwhile (bursts of forty statuses in a quarter of
        # a second, the hub saturated for their length at "half" the rate).
        window = days()
        window = window[: math.ceil(len(window) * paced_n / documents)]
        paced = Simulation(
            clients,
            TrafficModel(
                chosen, seed + 1, attachment_kb, first_number=documents + 1, window=window
            ),
            paced_n,
            concurrency,
            gather_s=NATIONAL_GATHER_S,
            progress=stage_progress(report, "paced", paced_n, "sent"),
            pace_per_s=rate / 2,
            answer_pace_per_s=rate / 2 * _answers_per_document(tally) * ANSWER_HEADROOM,
        )
        hub_timed = site.admin_url is not None and workers == 1
        before = await _hub_send_buckets(site) if hub_timed else {}
        # Read again once the last document is sent: the drain after it posts every answer
        # still due at once, unpaced, and is not the half rate's to answer for.
        timed = asyncio.create_task(_sent_then(paced, site)) if hub_timed else None
        try:
            paced_tally = await paced.run()
        except BaseException:
            if timed is not None:  # a run that failed never says it sent its last document
                timed.cancel()
            raise
        after = await timed if timed is not None else {}
        hub_sends = {edge: n - before.get(edge, 0) for edge, n in after.items()}
    database = "PostgreSQL" if hub_settings.hub.database else "SQLite"
    plural = "s" if workers > 1 else ""
    # a document's edocs (itself and its updates), statuses and requests, at full rate
    mix = (tally.accepted + tally.updates) / n, tally.statuses / n, sum(requests.values()) / n
    return MixResult(
        documents=tally.accepted,
        per_s=rate,
        elapsed_s=full.elapsed_s,
        hub_cpu_ms=hub_cpu,
        agencies_cpu_ms=own_cpu,
        requests=requests,
        connections=connections,
        signed=tally.accepted + tally.updates + tally.statuses,
        deliveries=tally.deliveries,
        send_ms=percentiles(paced_tally.send_ms),
        saturated_send_ms=percentiles(tally.send_ms),
        paced_per_s=paced_tally.accepted / paced.elapsed_s,
        paced_documents=paced_n,
        hub_rss_mb=watch.samples,
        hub_sockets=watch.sockets,
        agencies_peak_rss_mb=own_peak_rss_mb(),
        lost=tally.lost + paced_tally.lost,
        duplicates=tally.duplicates + paced_tally.duplicates,
        refused=sum(tally.refused.values()) + sum(paced_tally.refused.values()),
        hub=f"{hub_settings.signatures.verifier}, {database}, {workers} worker{plural}",
        database_cpu_ms=database_cpu,
        floor_ms=(measured.sign_s + measured.verify_s) / measured.packages * 1000,
        contract=costs,
        contract_ms_per_doc=costs.required(*mix),
        checked_ms_per_doc=costs.checked(*mix),
        hub_loop_busy=max(loops[:-1]),
        agencies_loop_busy=loops[-1],
        hub_send_ms=(
            {"p50": bucket_quantile(hub_sends, 0.5), "p99": bucket_quantile(hub_sends, 0.99)}
            if hub_timed
            else None
        ),
    )


async def _sent_then(simulation: Simulation, site: Site) -> dict[float, int]:
    """:func:`_hub_send_buckets` as soon as ``simulation`` has sent its last document."""
    await simulation.sent()
    return await _hub_send_buckets(site)


async def _hub_send_buckets(site: Site) -> dict[float, int]:
    """The hub's histogram of accepted sends (POST /v1/packages answered 200 or 201), as
    cumulative counts by upper edge in seconds, read from its operator port."""
    token = site.data.admin_token.read_text().strip()
    request = urllib.request.Request(
        f"{site.admin_url}/metrics", headers={"Authorization": f"Bearer {token}"}
    )

    def read() -> str:
        with urllib.request.urlopen(request, timeout=10) as response:
            text: str = response.read().decode()
            return text

    buckets: dict[float, int] = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(read)):
        if family.name != "axis_request_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_bucket")
                and labels.get("method") == "POST"
                and labels.get("route") == "/v1/packages"
                and labels.get("status") in ("200", "201")
            ):
                edge = float(labels["le"])
                buckets[edge] = buckets.get(edge, 0) + int(sample.value)
    return buckets


def bucket_quantile(cumulative: dict[float, int], q: float) -> float | None:
    """The upper edge, in ms, of the first bucket of a cumulative histogram (upper edge in
    seconds → count) that holds the ``q``-quantile; None if it is empty. The last bucket
    (+Inf) answers inf."""
    edges = sorted(cumulative)
    total = cumulative[edges[-1]] if edges else 0
    if total <= 0:
        return None
    rank = math.ceil(q * total - 1e-9)
    edge = next(e for e in edges if cumulative[e] >= rank)
    return round(edge * 1000, 1)


@dataclass
class _DatabaseCpu:
    """The CPU the PostgreSQL server spent on one database over the run: each backend's
    growth since it was first seen (from 0 for one that connected during the run), summed,
    sampled every RSS_EVERY_S so that a backend that ends keeps what it used. Backends are
    told by their process title (``postgres: … USER DATABASE HOST …``)."""

    database: str
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    started: bool = False

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError):
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().split()
                if self.database not in title:
                    continue
                pid = int(entry.name)
                used = cpu_s([pid])
                self.first.setdefault(pid, used if not self.started else 0.0)
                self.last[pid] = used
        self.started = True

    @property
    def used_s(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _answers_per_document(tally: Tally) -> float:
    """Business statuses (not 01, which a reader sends as it reads) posted a document."""
    answers = tally.statuses - tally.status_codes["01"]
    return max(answers, 1) / max(tally.accepted, 1)
