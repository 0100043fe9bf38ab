"""``axis serve --workers N``: N hub processes on the same ports, over one shared database.

The parent serves nothing itself. It starts N workers (``axis serve --reuse-port``), each a
whole hub: the node and operator APIs, push delivery and checkpoints. Each listens on the same
ports with SO_REUSEPORT, and the kernel spreads new connections among them. What they share
lives in PostgreSQL (:mod:`axis.store.postgres`): one log order under an advisory lock, push
work claimed with leases (FOR UPDATE SKIP LOCKED), counters updated in the writes' own
transactions. A worker that dies is started again; its leases expire and are taken over, and
its clients' requests are retried on the others (a 201 is only ever sent after the commit).

On SIGTERM or SIGINT the parent passes it on, waits for the workers to finish what they hold
(``shutdown_timeout_s``) and kills those still running after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time

from axis.errors import ConfigError, WorkersFailed
from axis.host.config import Settings
from axis.host.datadir import DataDir

log = logging.getLogger("axis.workers")

RESTART_PAUSE_S = 1.0  # the first pause between a worker's death and its replacement …
RESTART_MAX_S = 30.0  # … doubling while it keeps dying young, up to this
YOUNG_S = 10.0  # a worker that dies sooner than this after its start "died young"
GIVE_UP_YOUNG = 3  # a slot whose worker dies young this many times in a row: stop, exit 1
# Beyond shutdown_timeout_s, before a worker that will not stop is killed: after draining,
# a worker still gives its background tasks up to 5 s each and hands its leases back.
GRACE_S = 15.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the parent dies, however it dies (Linux), so
    no orphan keeps serving on the shared ports beside a new supervisor's workers."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_command(
    data: DataDir, settings: Settings, log_format: str = "text", simulated_clock: bool = False
) -> list[str]:
    """How one worker is started: the settings the parent resolved, on the shared ports."""
    command = [
        sys.executable, "-m", "axis", "serve", "--data", str(data.root),
        "--host", settings.hub.host, "--port", str(settings.hub.port),
        "--admin-port", str(settings.hub.admin_port), "--log-format", log_format, "--reuse-port",
    ]  # fmt: skip
    if settings.signatures.allow_sha1:
        command.append("--allow-sha1")
    if settings.vdxp.enabled:  # the national axis's face too, in every worker
        command += ["--vdxp-port", str(settings.vdxp.vdxp_port)]
    if simulated_clock:
        command.append("--simulated-clock")
    return command


async def supervise(
    data: DataDir,
    settings: Settings,
    db_url: str,
    workers: int,
    log_format: str = "text",
    simulated_clock: bool = False,
) -> None:
    """Run ``workers`` hub processes until SIGTERM or SIGINT, replacing any that dies (with
    a growing pause while it keeps dying young).

    Raises:
        WorkersFailed: a worker died young GIVE_UP_YOUNG times in a row (the others are
            stopped first); the reason is in its output.
    """
    if 0 in (settings.hub.port, settings.hub.admin_port) or (
        settings.vdxp.enabled and settings.vdxp.vdxp_port == 0
    ):
        raise ConfigError("--workers needs fixed ports: every worker listens on the same ones")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The database URL goes by environment, not argv: a password would show in `ps`.
    env = {**os.environ, "AXIS_DB": db_url}
    command = worker_command(data, settings, log_format, simulated_clock)
    started: dict[int, float] = {}
    young: dict[int, int] = {}
    running: dict[int, asyncio.subprocess.Process] = {}

    async def start(n: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *command,
            env={**env, "AXIS_WORKER": str(n)},
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        started[n] = time.monotonic()
        log.info("worker %d started (pid %d)", n, process.pid)
        return process

    hub = settings.hub
    print(
        f"Axis hub: starting {workers} workers on https://{hub.host}:{hub.port} (node API)"
        f" and http://{hub.admin_host}:{hub.admin_port} (operator API)",
        flush=True,
    )
    try:
        for n in range(1, workers + 1):
            running[n] = await start(n)
        while not stop.is_set():
            exits = {asyncio.ensure_future(p.wait()): n for n, p in running.items()}
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([*exits, stopping], return_when=asyncio.FIRST_COMPLETED)
            for future in (*exits, stopping):
                if future not in done:
                    future.cancel()
            for future in done:
                if future is stopping:
                    continue
                n = exits[future]
                lived = time.monotonic() - started[n]
                young[n] = young.get(n, 0) + 1 if lived < YOUNG_S else 0
                if young[n] >= GIVE_UP_YOUNG:
                    raise WorkersFailed(
                        f"worker {n} exited with status {future.result()} within"
                        f" {YOUNG_S:.0f} s of starting, {young[n]} times in a row: see its"
                        " output above; stopping"
                    )
                pause = min(RESTART_MAX_S, RESTART_PAUSE_S * 2 ** max(0, young[n] - 1))
                log.warning(
                    "worker %d (pid %d) exited with status %s; starting another in %.0f s",
                    n, running[n].pid, future.result(), pause,
                )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await stop.wait()
                if not stop.is_set():
                    running[n] = await start(n)
    finally:
        await _stop_all(list(running.values()), settings.limits.shutdown_timeout_s + GRACE_S)
    print("Axis hub stopped.", flush=True)


async def _stop_all(processes: list[asyncio.subprocess.Process], timeout_s: float) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await process.wait()
        except TimeoutError:
            log.warning("worker pid %d did not stop in time; killing it", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
