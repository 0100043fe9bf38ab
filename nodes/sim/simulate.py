"""``axis simulate``: a country of simulated agencies against a hub.

By default it makes a fresh data folder, registers the scenario's agencies there (ECDSA keys:
quick to make, quick to sign) and starts ``axis serve`` on it as a child process on 127.0.0.1:
the same hub operators run, on a core of its own while the simulated agencies use this
process (the two sides cost about the same, and one process would hold both to one core). With
``hub_url`` it drives a hub that is already running instead: it registers the agencies it needs
that are missing in that hub's data folder (the hub sees them at once) and uses their profiles.
Either way the traffic model runs through :class:`nodes.sim.runner.Simulation`, and the hub's
own statistics are read at the end to set beside the simulator's counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from axis.core import vdxp
from axis.core.clock import SimulatedClock
from axis.core.edxml_dialects import DIALECTS
from axis.host import datadir, runtime
from axis.host.datadir import DataDir
from axis.http.sockets import free_port
from axis.store import open_store
from axis.store.base import Store, System
from axis.usecases import operations, registration
from nodes.client import VIETNAM, NodeClient
from nodes.listen import listening
from nodes.profile import Profile
from nodes.sim import country, report
from nodes.sim.country import SimAgency
from nodes.sim.national import NationalAgency, system_of
from nodes.sim.runner import NATIONAL_GATHER_S, Progress, Simulation
from nodes.sim.traffic import WINDOW, TrafficModel, dialects_of, plan_faults
from nodes.vdxp import VdxpClient

log = logging.getLogger("axis.simulate")

SCENARIOS = ("seed-2020",)
# Every run writes what the field's software writes: each dialect, one agency in four.
DEFAULT_MIX: Mapping[str, float] = MappingProxyType({name: 1.0 for name in DIALECTS})
CLIENT_RETRIES = 20  # about half a minute of retrying: a hub restart loses nothing
HUB_START_S = 60.0
HUB_STOP_S = 30.0


@dataclass(frozen=True)
class Outcome:
    """What a run produced: the summary, the hub's own statistics, the report's files."""

    summary: dict[str, Any]
    hub_stats: dict[str, Any]
    report: dict[str, Any]
    html: Path | None


def agencies_for(scenario: str, count: int | None) -> tuple[SimAgency, ...]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    return country.first(count) if count else country.seed_2020()


def listens(agency: SimAgency) -> bool:
    """About one agency in ten runs a push endpoint (``axis-node listen``) instead of only
    pulling; it still acknowledges through the API once it has handled the package."""
    return int(hashlib.sha256(agency.organ_id.encode()).hexdigest(), 16) % 10 == 3


@dataclass(frozen=True)
class Site:
    """The hub a run drives: its data folder, node API URL, store, and (when this run
    started it) its process id."""

    data: DataDir
    url: str
    store: Store
    pid: int | None = None
    vdxp_url: str | None = None  # the national axis's face, when it serves one
    admin_url: str | None = None  # the operator's port, when this run started the hub


def on_national_face(agency: SimAgency, share: float) -> bool:
    """Whether an agency's software uses the national axis's own API (VNPT's SDK) rather
    than axis-node: about ``share`` of them, the same ones every run; never one that runs a
    push endpoint (that face has no push)."""
    if share <= 0 or listens(agency):
        return False
    digest = hashlib.sha256(b"vdxp:" + agency.organ_id.encode()).hexdigest()
    return int(digest, 16) % 10_000 < share * 10_000


@asynccontextmanager
async def own_hub(
    agencies: tuple[SimAgency, ...],
    push: bool = True,
    workers: int = 1,
    national: frozenset[str] = frozenset(),
    settings: Mapping[str, str] | None = None,
    simulated_clock: bool = False,
) -> AsyncIterator[Site]:
    """A fresh data folder, ``axis serve`` on it (``--workers``), and (with ``push``) the
    listening agencies' push endpoints; all of it stopped and removed afterwards (the hub's
    output is in DATA/serve.log). ``settings`` are axis.toml keys to set first (``database``
    for a PostgreSQL hub: give it an empty database). ``national``: the agencies on the
    national axis's face (the hub serves it on a port of its own). ``simulated_clock``: the
    hub records the times the agencies' requests say (:mod:`axis.core.clock`)."""
    work = Path(tempfile.mkdtemp(prefix="axis-simulate-"))
    try:
        data = DataDir(work / "data")
        datadir.init(data)
        datadir.mark_simulation(data)
        for key, value in (settings or {}).items():
            datadir.set_setting(data, key, value)
        port, admin_port = free_port(), free_port()
        vdxp_port = free_port() if national else None
        url = f"https://127.0.0.1:{port}"
        store = open_store(data.database_url())
        await store.open()
        try:
            await _register(data, url, store, agencies, push, national)
            serving = _serving(data, port, admin_port, workers, vdxp_port, simulated_clock)
            async with serving as pid:
                async with _push_endpoints(data, store, agencies):
                    yield Site(
                        data,
                        url,
                        store,
                        pid,
                        _vdxp_url(data, vdxp_port),
                        f"http://127.0.0.1:{admin_port}",
                    )
        finally:
            await store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@asynccontextmanager
async def _push_endpoints(
    data: DataDir, store: Store, agencies: tuple[SimAgency, ...]
) -> AsyncIterator[None]:
    """The push endpoint (``axis-node listen``) of every listening agency, on the port its
    registration names, while the block runs. An agency registered by an earlier run whose
    port is taken now goes without: the hub retries its pushes, and it pulls meanwhile."""
    async with AsyncExitStack() as endpoints:
        for agency in filter(listens, agencies):
            registered = await store.get_agency(agency.organ_id)
            if registered is None or not registered.endpoint:
                continue
            port = urlsplit(registered.endpoint).port or 443
            profile = Profile.load(data.profile(agency.organ_id))
            try:
                await endpoints.enter_async_context(listening(profile, port, profile.received))
            except OSError as exc:
                log.warning("%s's push endpoint cannot listen: %s", agency.organ_id, exc)
        yield


@asynccontextmanager
async def _serving(
    data: DataDir,
    port: int,
    admin_port: int,
    workers: int = 1,
    vdxp_port: int | None = None,
    simulated_clock: bool = False,
) -> AsyncIterator[int]:
    """``axis serve`` as a child process until the block ends, then SIGTERM (it finishes
    what it holds and exits); SIGKILL if it has not gone within HUB_STOP_S."""
    log = (data.root / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "axis", "serve", "--data", str(data.root),
        "--port", str(port), "--admin-port", str(admin_port), "--workers", str(workers),
        *(["--vdxp-port", str(vdxp_port)] if vdxp_port else []),
        *(["--simulated-clock"] if simulated_clock else []),
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
        # Stopped with this process however it ends, SIGKILL included (runtime.die_with_parent).
        env={**os.environ, runtime.PARENT_ENV: str(os.getpid())},
    )  # fmt: skip
    try:
        await _until_healthy(process, admin_port, data.root / "serve.log")
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(HUB_STOP_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def _until_healthy(process: asyncio.subprocess.Process, admin_port: int, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + HUB_START_S
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the hub exited with status {process.returncode}:\n{tail}")
            try:
                async with http.get(f"http://127.0.0.1:{admin_port}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the hub did not answer within {HUB_START_S:.0f} s; see {log}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def _their_hub(
    data: DataDir,
    hub_url: str,
    agencies: tuple[SimAgency, ...],
    national: frozenset[str] = frozenset(),
) -> AsyncIterator[Site]:
    """A hub someone else runs, through its data folder's store; the listening agencies'
    push endpoints run here, so the hub pushes to this process."""
    data.require()
    store = open_store(data.database_url())
    await store.open()
    try:
        await _register(data, hub_url, store, agencies, national=national)
        settings = data.settings().vdxp
        if national and not settings.enabled:
            raise ValueError(f"--vdxp-share: the hub's [vdxp] is off ({data.config})")
        vdxp_url = _vdxp_url(data, settings.vdxp_port) if national else None
        async with _push_endpoints(data, store, agencies):
            yield Site(data, hub_url, store, vdxp_url=vdxp_url)
    finally:
        await store.close()


async def _register(
    data: DataDir,
    hub_url: str,
    store: Store,
    agencies: tuple[SimAgency, ...],
    push: bool = True,
    national: frozenset[str] = frozenset(),
) -> None:
    """Register the agencies the hub does not know yet (with ``push``, a listening one with a
    push endpoint on a free port); those registered by an earlier run keep their profile and
    endpoint. An agency in ``national`` gets a system of its own (its SDK's systemId and
    secret) that speaks for it on the national axis's face."""
    issuer = datadir.load_issuer(data)
    for agency in agencies:
        system_id = None
        if agency.organ_id in national:
            system_id = system_of(agency.organ_id)
            if await store.get_system(system_id) is None:
                sealed = vdxp.seal(vdxp.new_secret(), data.systems_key_bytes(), system_id)
                await store.add_system(System(system_id, agency.name, sealed, datetime.now(UTC)))
        if await store.get_agency(agency.organ_id) is not None:
            continue  # registered by an earlier run: its profile is there
        port = free_port() if push and listens(agency) else None
        await registration.register(
            data,
            store,
            agency.organ_id,
            agency.name,
            hub_url=hub_url,
            endpoint=f"https://127.0.0.1:{port}/" if port else None,
            key_kind="ec",
            issuer=issuer,
            system_id=system_id,
        )


def _vdxp_url(data: DataDir, port: int | None) -> str | None:
    if port is None:
        return None
    return f"http://127.0.0.1:{port}{data.settings().vdxp.path_prefix.rstrip('/')}"


async def client_of(
    site: Site, agency: SimAgency, national: frozenset[str], **kw: Any
) -> NodeClient:
    """An agency's software: axis-node's client, or (``national``) VNPT's SDK with the
    secret of its system, which this run holds the data folder's key to open."""
    profile = Profile.load(site.data.profile(agency.organ_id))
    if agency.organ_id not in national:
        return NodeClient(profile, hub_url=site.url, **kw)
    system = await site.store.get_system(system_of(agency.organ_id))
    registered = await site.store.get_agency(agency.organ_id)
    if system is None or site.vdxp_url is None or registered is None:
        raise ValueError(f"{agency.organ_id} has no system on the national axis's face")
    if registered.system_id != system.system_id:  # registered natively by an earlier run
        return NodeClient(profile, hub_url=site.url, **kw)
    secret = vdxp.unseal(system.sealed_secret, site.data.systems_key_bytes(), system.system_id)
    sdk = VdxpClient(site.vdxp_url, system.system_id, secret, max_connections=4)
    return NationalAgency(profile, sdk, hub_url=site.url, **kw)


@asynccontextmanager
async def clients_of(
    site: Site,
    agencies: Sequence[SimAgency],
    national: frozenset[str] = frozenset(),
    written: Mapping[str, str] | None = None,
    **kw: Any,
) -> AsyncIterator[dict[str, NodeClient]]:
    """Every agency's software (:func:`client_of`), each writing the dialect ``written``
    names for it (default: its profile's), all closed when the block ends. They do not check
    what they build against the schema before signing it (``check_built``): the hub checks
    every package it takes, and a refused one fails the run; that check was a twentieth of
    the simulated agencies' CPU."""
    kw.setdefault("check_built", False)
    clients: dict[str, NodeClient] = {}
    try:
        for a in agencies:
            dialect = {"dialect": DIALECTS[written[a.organ_id]]} if written else {}
            clients[a.organ_id] = await client_of(site, a, national, **kw, **dialect)
        yield clients
    finally:
        for client in clients.values():
            await client.close()


async def simulate(
    *,
    scenario: str = "seed-2020",
    documents: int,
    agencies: int | None = None,
    seed: int = 2020,
    attachment_kb: float = 20,
    concurrency: int = 8,
    faults: bool = False,
    hub_url: str | None = None,
    data: DataDir | None = None,
    report_dir: Path | None = None,
    progress: Progress | None = None,
    on_ready: Callable[[int], None] | None = None,
    dialects: Mapping[str, float] | None = None,
    vdxp_share: float = 0.0,
    settle: bool = False,
) -> Outcome:
    """Run one simulation end to end (see the module doc). ``vdxp_share``: that share of
    the agencies reach the hub through the national axis's own API (VNPT's SDK).
    ``settle``: this process is the simulator's own (``axis simulate``), so what it sets up
    is set aside from the garbage collector (:func:`axis.host.runtime.settle_heap`); never
    in a process that goes on to do other things (a test run)."""
    chosen = agencies_for(scenario, agencies)
    if hub_url is not None and data is None:
        raise ValueError("--hub needs --data: the data folder of the hub it drives")
    national = frozenset(a.organ_id for a in chosen if on_national_face(a, vdxp_share))
    # The hub this run starts records the window's times, as the agencies say them; a hub
    # someone else runs keeps its own clock.
    clock = None if hub_url else SimulatedClock(datetime.combine(WINDOW[0], time(), VIETNAM))
    hub = (
        _their_hub(data, hub_url, chosen, national)
        if hub_url and data
        else own_hub(chosen, national=national, simulated_clock=clock is not None)
    )
    async with hub as site:
        store = site.store
        if on_ready:
            on_ready(len(chosen))
        written = dialects_of(chosen, dialects or DEFAULT_MIX, seed)
        async with clients_of(
            site,
            chosen,
            national,
            written,
            retries=CLIENT_RETRIES,
            seed=seed,
            simulated_clock=clock,
        ) as clients:
            if settle:  # the agencies' set-up, out of every full collection's walk
                runtime.settle_heap()
            model = TrafficModel(chosen, seed, attachment_kb)
            fault_plan = plan_faults(chosen, seed) if faults else None
            run = Simulation(
                clients,
                model,
                documents,
                concurrency,
                progress=progress,
                faults=fault_plan,
                gather_s=NATIONAL_GATHER_S,
                clock=clock,
            )
            tally = await run.run()
        hub_stats = await operations.statistics(store)
    summary = run.summary(failed=hub_stats["by_state"].get("failed", 0))
    names = {a.organ_id: a.name for a in chosen}
    built = report.build(
        summary,
        dict(tally.per_day),
        [(o, names[o], tally.sent_by[o], tally.received_by[o]) for o in names],
        hub_stats,
        {"name": scenario, "seed": seed, "documents": documents, "start": WINDOW[0],
         "end": WINDOW[1], "faults": faults, "hub": hub_url or "in-process"},
        (tally.sent_per_day, tally.received_per_day),
    )  # fmt: skip
    built["refused"] = dict(tally.refused)
    faces = {"native": len(chosen) - len(national), "vdxp": len(national)}
    summary["faces"] = built["faces"] = faces
    built["dialects"] = {
        name: {"agencies": sum(1 for d in written.values() if d == name), **counts}
        for name, counts in summary["dialects"].items()
    }
    html = report.write(built, report_dir) if report_dir else None
    return Outcome(summary, hub_stats, built, html)
