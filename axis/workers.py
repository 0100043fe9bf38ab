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
import logging
import os
import signal
import sys
import time

from axis.config import Settings
from axis.datadir import DataDir

log = logging.getLogger("axis.workers")

RESTART_PAUSE_S = 1.0  # between a worker's death and its replacement
GRACE_S = 5.0  # beyond shutdown_timeout_s, before a worker that will not stop is killed


def worker_command(data: DataDir, settings: Settings) -> list[str]:
    """How one worker is started: the settings the parent resolved, on the shared ports."""
    command = [
        sys.executable, "-m", "axis", "serve", "--data", str(data.root),
        "--host", settings.host, "--port", str(settings.port),
        "--admin-port", str(settings.admin_port), "--reuse-port",
    ]  # fmt: skip
    if settings.allow_sha1:
        command.append("--allow-sha1")
    return command


async def supervise(data: DataDir, settings: Settings, db_url: str, workers: int) -> None:
    """Run ``workers`` hub processes until SIGTERM or SIGINT, replacing any that dies."""
    if 0 in (settings.port, settings.admin_port):
        raise ValueError("--workers needs fixed ports: every worker listens on the same ones")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The database URL goes by environment, not argv: a password would show in `ps`.
    env = {**os.environ, "AXIS_DB": db_url}
    command = worker_command(data, settings)

    async def start(n: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *command, env={**env, "AXIS_WORKER": str(n)}, stdin=asyncio.subprocess.DEVNULL
        )
        log.info("worker %d started (pid %d)", n, process.pid)
        return process

    running = {n: await start(n) for n in range(1, workers + 1)}
    print(
        f"Axis hub: {workers} workers on https://{settings.host}:{settings.port} (node API)"
        f" and http://{settings.admin_host}:{settings.admin_port} (operator API)",
        flush=True,
    )
    try:
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
                log.warning(
                    "worker %d (pid %d) exited with status %s; starting another",
                    n, running[n].pid, future.result(),
                )  # fmt: skip
                await asyncio.sleep(RESTART_PAUSE_S)
                if not stop.is_set():
                    running[n] = await start(n)
    finally:
        await _stop_all(list(running.values()), settings.shutdown_timeout_s + GRACE_S)
    print("Axis hub stopped.", flush=True)


async def _stop_all(processes: list[asyncio.subprocess.Process], timeout_s: float) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("worker pid %d did not stop in time; killing it", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
