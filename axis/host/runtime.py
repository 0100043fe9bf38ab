"""Running the event loop: uvloop where it is installed, asyncio's own loop otherwise.

uvloop matters most for the hub's TLS: its SSL transport is written in Cython, where asyncio's
(Python 3.11) is pure Python, keeps a 256 KiB read buffer per connection and, before 3.11.8,
could keep a closed connection's protocol and buffers alive (CPython issue 109534). Set
``AXIS_LOOP=asyncio`` to run on the stdlib loop anyway (to compare, or to debug).

:func:`run` also tunes glibc's allocator (:func:`tune_malloc`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default loop."""
    if os.environ.get("AXIS_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    """The C library on Linux (for mallopt, malloc_trim, prctl); None elsewhere."""
    if not sys.platform.startswith("linux") or (name := ctypes.util.find_library("c")) is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@dataclass(frozen=True)
class Allocator:
    """glibc's thresholds as :func:`tune_malloc` fixes them: blocks from ``mmap_threshold`` up
    get their own mapping, returned on free; the heap's top is given back past
    ``trim_threshold`` free."""

    mmap_threshold: int
    trim_threshold: int


# The hub: memory flat over a long run. Its big blocks (package bodies, and the TLS buffers of
# each connection, which it closes now and then: http.sockets.recycling) go back on free.
SERVING = Allocator(mmap_threshold=64 * 1024, trim_threshold=128 * 1024)
# The commands that drive a hub (the simulator, the bench, axis-node): CPU first. uvloop reads
# TLS into a 256 KiB block and shrinks it to what came; under a 64 KiB threshold each read was
# a fresh mapping, faulted in page by page and unmapped (with a TLB shootdown on the other
# core). Measured on the national mix, the simulated agencies took 29 mmaps, 22 mremaps and
# about 500 page faults a document, the hub 12, 9 and about 210; from 1 MiB, both next to
# none. CPU a document, two alternating pairs of 6,000 documents: agencies 11.29, 11.45 ->
# 9.88, 9.77 ms, hub 15.41, 15.00 -> 14.00, 14.11 ms. But the hub's RSS then grew 165 -> 210
# MB over 20,000 documents (140 -> 161 at 64 KiB), two workers 302 MB together: not the hub's.
CLIENT = Allocator(mmap_threshold=1024 * 1024, trim_threshold=16 * 1024 * 1024)


def tune_malloc(allocator: Allocator = SERVING) -> bool:
    """Fix glibc's thresholds (see :class:`Allocator`); True if it applied (glibc only).

    Left to itself, glibc raises its mmap threshold each time a big block is freed, after
    which such blocks all come from the main heap, which only shrinks from the top: measured,
    a hub's RSS grew 170 -> 257 MB over 1,200 simulated documents with 0.3 MB of live Python
    objects more (malloc_trim gave it back: 83 MB). Fixed at :data:`SERVING`'s: 89 -> 119 MB
    over the same run."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False  # not Linux, or not glibc (musl has no mallopt)
    ok = mallopt(M_MMAP_THRESHOLD, allocator.mmap_threshold) and mallopt(
        M_TRIM_THRESHOLD, allocator.trim_threshold
    )
    return bool(ok)


PARENT_ENV = "AXIS_PARENT_PID"  # set by a command that runs a hub as its child
PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> bool:
    """In a hub that a command started as its child (``$AXIS_PARENT_PID``: the simulator, the
    bench): be sent SIGTERM when that parent dies, however it dies, so that a killed run
    leaves no hub behind holding its port and data folder. True if that applied (Linux).

    SIGTERM stops the hub as ``axis serve`` always stops: it finishes what it holds."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or (libc := _libc()) is None:
        return False
    # What this process starts in turn (a supervisor's workers) dies with it, not with ours.
    os.environ[PARENT_ENV] = str(os.getpid())
    prctl = libc.prctl
    if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if str(os.getppid()) != parent:  # it died before we asked: nobody will tell us now
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def settle_heap() -> int:
    """Collect once, then set every object alive now aside from the cyclic garbage collector
    (``gc.freeze``); returns how many were. For a long-running process once it is set up: its
    modules, schemas, keys and directory live as long as it does.

    A full collection walks every object the collector tracks, with the GIL held: a hub
    serving the national mix paused 27-52 ms every 15 s or so for it, the simulator (which
    also measures the send latency) 37-88 ms, mostly over what they had loaded before the
    first request. Set aside once set up, the same runs paused 7-12 ms (the hub) and 14-40
    ms (the simulator, whose bookkeeping grows with the run), no more often (6,000
    documents, measured with gc.callbacks). What is set aside and later dropped is freed by
    its reference count as before; only a cycle among such objects would stay, and a process
    makes those at startup once.

    The hub calls it once listening (``axis serve``, each worker), the simulator once its
    agencies are set up (``axis simulate``, ``axis bench``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


TRIM_EVERY_S = 60.0


def malloc_trimmer() -> Callable[[], int] | None:
    """``malloc_trim(0)`` of glibc, or None elsewhere: it hands the heap's free pages back."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    return lambda: int(trim(0))


async def trim_memory(stop: asyncio.Event, every_s: float = TRIM_EVERY_S) -> None:
    """Until ``stop``: every ``every_s`` seconds give glibc's free heap pages back.

    Even with :func:`tune_malloc`, a hub under long load crept up (300 MB after 100,000
    documents, +4 MB per 10 minutes at the end) while its live Python objects did not: free
    chunks in the middle of the heap, which glibc returns only from the top. malloc_trim
    releases free pages anywhere in the heap; once a minute it costs milliseconds.
    """
    trim = malloc_trimmer()
    while not stop.is_set():
        try:
            async with asyncio.timeout(every_s):
                await stop.wait()
        except TimeoutError:
            if trim is not None:
                trim()


def run(
    main: Coroutine[Any, Any, T], stop_on_sigterm: bool = False, allocator: Allocator = SERVING
) -> T:
    """``asyncio.run(main)`` on the best loop available, with :func:`tune_malloc` to
    ``allocator`` (:data:`CLIENT` for a command that drives a hub).

    ``stop_on_sigterm``: SIGTERM cancels ``main`` as Ctrl-C does, so that what it holds is
    undone on the way out (the simulator's and the bench's temporary data folder, the hub
    they started), and the process exits with status 143 (128 + SIGTERM). Python's own
    SIGTERM ends the process at once, its ``finally`` blocks unrun: a bench stopped that way
    left its data folder behind.
    """
    tune_malloc(allocator)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        if not stop_on_sigterm:
            return runner.run(main)
        terminated = False

        async def cancelled_by_sigterm() -> T:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None

            def stop() -> None:
                nonlocal terminated
                if terminated:  # a second SIGTERM must not cut the clean-up short
                    return
                terminated = True
                task.cancel()

            loop.add_signal_handler(signal.SIGTERM, stop)
            try:
                return await main
            finally:
                loop.remove_signal_handler(signal.SIGTERM)

        try:
            result = runner.run(cancelled_by_sigterm())
        except asyncio.CancelledError:
            if terminated:
                raise SystemExit(128 + signal.SIGTERM) from None
            raise
        if terminated:  # the cancellation was swallowed on the way (a library may do that)
            raise SystemExit(128 + signal.SIGTERM)
        return result
