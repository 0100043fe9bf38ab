"""Building and running the hub: two aiohttp applications over one :class:`~axis.usecases.hub.Hub`.

The node application listens with TLS and asks for client certificates (optional at the TLS
layer so that ``/healthz`` answers without one; every other route demands one). The operator
application listens in plain HTTP on loopback and checks the admin bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from axis.core import pki
from axis.core.clock import HEADER as SIMULATED_TIME
from axis.core.clock import SimulatedClock, parse_instant, utc_now
from axis.core.receipt import ReceiptSigner
from axis.errors import SchemaViolation
from axis.host import runtime
from axis.host.config import Settings, VdxpSettings
from axis.host.datadir import DataDir
from axis.http.problems import access_log, problem_middleware
from axis.http.sockets import ConnectionGate, GatedSite, bind, raise_file_limit, recycling
from axis.store import open_store
from axis.usecases.delivery import DeliveryWorker, PushTransport
from axis.usecases.hub import Hub
from axis.usecases.national import NationalFace
from axis.usecases.operations import Checkpointer
from axis.web import node_api
from axis.web.admin import admin_app
from axis.web.keys import HUB, METRICS
from axis.web.metrics import HubMetrics
from axis.web.push_client import HttpsPushTransport
from axis.web.vdxp_api import vdxp_app

log = logging.getLogger("axis.serve")
# After the drain: how long aiohttp's shutdown waits for a request before cutting it off.
CUT_OFF_S = 1.0


def build_hub(
    data: DataDir,
    settings: Settings,
    db_url: str | None = None,
    clock: SimulatedClock | None = None,
) -> Hub:
    """A Hub for a data folder: its store, trust, keys and policy, loaded once (``clock``:
    the simulation's, for the simulator's own hub)."""
    data.require()
    verifier = data.verifier(settings)
    receipts = ReceiptSigner(data.hub_key.read_bytes(), data.hub_cert.read_bytes())
    store = open_store(data.database_url(db_url), serving=True)
    return Hub(store, verifier, receipts, settings, clock=clock or utc_now)


def simulated_time(clock: SimulatedClock) -> Middleware:
    """What a request records happens at the simulated time its ``Axis-Simulated-Time``
    header says (the simulator's own hub only: :mod:`axis.core.clock`)."""

    @web.middleware
    async def at_simulated_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = request.headers.get(SIMULATED_TIME)
        if raw is None:
            return await handler(request)
        try:
            instant = parse_instant(raw)
        except ValueError as exc:
            raise SchemaViolation(f"{SIMULATED_TIME}: {exc}") from exc
        with clock.at(instant):
            return await handler(request)

    return at_simulated_time


def node_app(
    hub: Hub,
    transport: PushTransport | None = None,
    hub_metrics: HubMetrics | None = None,
    checkpointer: Checkpointer | None = None,
    sole_pusher: bool = False,
    clock: SimulatedClock | None = None,
    gate: ConnectionGate | None = None,
) -> web.Application:
    """The node API application. Its cleanup contexts open and close the store and, given
    them, run the push delivery worker and the log checkpointer while the application runs.
    ``gate``: its listener's, whose connections are closed once they have carried their share
    of requests (``requests_per_connection``), and which a stopping hub drains.

    ``sole_pusher``: no other process pushes from this store (the caller holds the data
    folder's serve lock), so leases found at start are a dead hub's and are resumed at once.
    ``clock``: the hub runs on the simulation's clock, as each request says.
    """
    hub_metrics = hub_metrics or HubMetrics()
    app = web.Application(
        middlewares=[
            *([recycling(gate)] if gate else []),
            hub_metrics.middleware(),
            access_log,
            problem_middleware,
            *([simulated_time(clock)] if clock else []),
        ],
        client_max_size=hub.settings.limits.max_body_bytes + 1,
    )
    app[HUB] = hub
    app[METRICS] = hub_metrics
    hub.store.observe(hub_metrics.log_entry)

    async def store_lifetime(app: web.Application) -> AsyncIterator[None]:
        await app[HUB].store.open()
        yield
        await app[HUB].store.close()

    async def push_lifetime(app: web.Application) -> AsyncIterator[None]:
        if transport is None or hub.settings.delivery.push_workers < 1:
            yield
            return
        if sole_pusher and (resumed := await hub.store.release_all_leases()):
            log.warning("resuming %d pushes a stopped hub left in flight", resumed)
        worker = DeliveryWorker(
            hub.store,
            transport,
            hub.settings.delivery,
            wake=hub.push_due,
            clock=hub.clock,
            on_event=hub_metrics.delivery_event,
        )
        async with _background(worker.run, "axis-delivery"):
            yield
        await transport.close()

    async def checkpoint_lifetime(app: web.Application) -> AsyncIterator[None]:
        if checkpointer is None:
            yield
            return
        async with _background(checkpointer.run, "axis-checkpoints"):
            yield

    app.cleanup_ctx.append(store_lifetime)
    app.cleanup_ctx.append(push_lifetime)
    app.cleanup_ctx.append(checkpoint_lifetime)
    node_api.add_routes(app)
    return app


@contextlib.asynccontextmanager
async def _background(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], name: str
) -> AsyncIterator[None]:
    """Run ``run(stop)`` as a task while the block runs; on the way out set ``stop``, give it
    a moment to finish its round (a last checkpoint, leases given back), then cancel it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop), name=name)
    try:
        yield
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class Running:
    """A hub that is listening: where, and its Hub."""

    hub: Hub
    node_port: int
    admin_port: int
    sites: tuple[web.BaseSite, ...] = ()
    vdxp_port: int | None = None  # the national axis's face, when enabled

    async def drain(self, timeout_s: float) -> bool:
        """Stop listening (new connections are refused), then wait up to ``timeout_s`` for
        the requests the node API and the national face hold to be answered, and close
        their other connections (:meth:`ConnectionGate.drain`). False if some were still
        running.

        aiohttp's own shutdown stops reading from connections at once (its RequestHandler
        drops data once it is closing), so an upload that is still arriving would be cut
        off: the hub first lets what it holds finish."""
        for site in self.sites:
            await site.stop()
        gates = [site.gate for site in self.sites if isinstance(site, GatedSite)]
        return all(await asyncio.gather(*(gate.drain(timeout_s) for gate in gates)))

    @property
    def url(self) -> str:
        return f"https://localhost:{self.node_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def vdxp_url(self, scheme: str = "http") -> str:
        """The SDK's endpoint setting for this hub (``[vdxp] path_prefix`` included)."""
        prefix = self.hub.settings.vdxp.path_prefix.rstrip("/")
        return f"{scheme}://127.0.0.1:{self.vdxp_port}{prefix}"


@contextlib.asynccontextmanager
async def running_hub(
    data: DataDir,
    settings: Settings,
    db_url: str | None = None,
    reuse_port: bool = False,
    simulated_clock: bool = False,
) -> AsyncIterator[Running]:
    """Start both listeners, yield while they serve, stop them cleanly (``simulated_clock``:
    on the simulation's clock, for the simulator's own hub).

    Raises:
        DataDirError: another hub serves this data folder (SQLite: one hub per folder), or
            the simulation's clock was asked of a hub that could serve real agencies.
    """
    clock = None
    if simulated_clock:
        data.check_simulated_clock(settings)
        clock = SimulatedClock()
        log.warning("this hub runs on the simulation's clock: it records simulated times")
    hub = build_hub(data, settings, db_url, clock)  # opens nothing yet: the lock comes first
    with data.serving_lock() if hub.store.single_node else contextlib.nullcontext():
        async with _running_hub(data, settings, hub, reuse_port, clock) as running:
            yield running


@contextlib.asynccontextmanager
async def _running_hub(
    data: DataDir, settings: Settings, hub: Hub, reuse_port: bool, clock: SimulatedClock | None
) -> AsyncIterator[Running]:
    soft, hard = raise_file_limit()  # each connection is a file: 1024 ran out before
    log.info("open files: up to %s", soft)
    transport = HttpsPushTransport(data.hub_cert, data.hub_key)
    hub_metrics = HubMetrics()
    checkpointer = Checkpointer(
        hub.store,
        pki.load_key(data.hub_key.read_bytes()),
        settings.log.checkpoint_every,
        settings.log.checkpoint_interval_s,
    )
    limits = settings.limits
    node_gate = ConnectionGate(
        "node API",
        limits.max_connections,
        limits.max_connections_per_peer,
        limits.requests_per_connection,
    )
    # keepalive_timeout also closes a connection that never completes a request (aiohttp
    # starts the timer when it connects): slow or half-sent headers do not hold a slot.
    # What still runs once Running.drain has waited shutdown_timeout_s is cut off: aiohttp's
    # own shutdown would give each such request 60 s more, then 60 s for its cancellation.
    node_runner = web.AppRunner(
        node_app(
            hub,
            transport,
            hub_metrics,
            checkpointer,
            sole_pusher=hub.store.single_node,
            clock=clock,
            gate=node_gate,
        ),
        access_log=None,
        keepalive_timeout=settings.limits.idle_timeout_s,
        shutdown_timeout=CUT_OFF_S,
    )
    admin_runner = web.AppRunner(
        admin_app(hub, data.admin_token.read_text().strip(), hub_metrics),
        access_log=None,
        shutdown_timeout=CUT_OFF_S,
    )
    face = settings.vdxp
    vdxp_runner = None
    # Its clients are known by address only, and one gateway carries many agencies.
    per_address = max(limits.max_connections_per_peer, limits.max_connections // 4)
    vdxp_gate = ConnectionGate(
        "national axis API", limits.max_connections, per_address, limits.requests_per_connection
    )
    hub_metrics.watch_connections(
        {"node": node_gate, "vdxp": vdxp_gate} if face.enabled else {"node": node_gate}
    )
    if face.enabled:
        national = NationalFace(hub, face, data.systems_key_bytes())
        vdxp_runner = web.AppRunner(
            vdxp_app(national, hub_metrics, face.path_prefix, vdxp_gate),
            access_log=None,
            keepalive_timeout=settings.limits.idle_timeout_s,
            shutdown_timeout=CUT_OFF_S,
        )
    # Ports first: a hub that cannot listen must fail before its push worker claims anything.
    socks = [bind(settings.hub.host, settings.hub.port, reuse_port)]
    try:
        socks.append(bind(settings.hub.admin_host, settings.hub.admin_port, reuse_port))
        if vdxp_runner is not None:
            socks.append(bind(face.vdxp_host, face.vdxp_port, reuse_port))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    node_sock, admin_sock = socks[0], socks[1]
    await node_runner.setup()
    try:
        await admin_runner.setup()
        node_site = GatedSite(node_runner, node_sock, node_gate, ssl_context=data.server_tls())
        admin_site = web.SockSite(admin_runner, admin_sock)
        sites: list[web.BaseSite] = [node_site, admin_site]
        if vdxp_runner is not None:
            await vdxp_runner.setup()
            sites.append(
                GatedSite(vdxp_runner, socks[2], vdxp_gate, ssl_context=vdxp_ssl_context(face))
            )
        for site in sites:
            await site.start()
        async with _background(runtime.trim_memory, "axis-malloc-trim"):
            yield Running(
                hub,
                node_sock.getsockname()[1],
                admin_sock.getsockname()[1],
                tuple(sites),
                socks[2].getsockname()[1] if vdxp_runner is not None else None,
            )
    finally:
        if vdxp_runner is not None:
            await vdxp_runner.cleanup()
        await admin_runner.cleanup()
        await node_runner.cleanup()


def vdxp_ssl_context(face: VdxpSettings) -> ssl.SSLContext | None:
    """TLS for the national axis's face when ``[vdxp]`` names a certificate (the real
    adapter is plain HTTP); no client certificates: the system's HMAC authenticates."""
    if not face.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(face.tls_cert, face.tls_key or None)
    return ctx


async def serve_forever(
    data: DataDir,
    settings: Settings,
    db_url: str | None = None,
    reuse_port: bool = False,
    simulated_clock: bool = False,
) -> None:
    """``axis serve``: run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_hub(data, settings, db_url, reuse_port, simulated_clock) as running:
        runtime.settle_heap()  # what it loaded to serve is not walked by every full collection
        log.info(
            "axis hub listening: node API %s, operator API %s",
            running.url,
            running.admin_url,
        )
        print(
            f"Axis hub serving the node API on https://{settings.hub.host}:{running.node_port}"
            f" and the operator API on {running.admin_url}",
            flush=True,
        )
        if running.vdxp_port is not None:
            face = settings.vdxp
            scheme = "https" if face.tls_cert else "http"
            print(
                f"… and the national axis's API (VNPT's SDK) on {scheme}://{face.vdxp_host}:"
                f"{running.vdxp_port}{face.path_prefix}",
                flush=True,
            )
        await stop.wait()
        log.info("stopping: no new connections; finishing the requests in hand")
        if not await running.drain(settings.limits.shutdown_timeout_s):
            log.warning(
                "requests still running after %.0f s are cut off",
                settings.limits.shutdown_timeout_s,
            )
    print("Axis hub stopped.", flush=True)
