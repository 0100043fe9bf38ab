"""How the commands run their event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axis.host import runtime


def test_uvloop_is_used_where_installed_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert runtime.loop_factory() is uvloop.new_event_loop

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert runtime.run(loop_type()).startswith("uvloop")
    monkeypatch.setenv("AXIS_LOOP", "asyncio")
    assert runtime.loop_factory() is None
    assert runtime.run(loop_type()).startswith("asyncio")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_allocator_is_tuned_on_glibc() -> None:
    assert runtime.tune_malloc()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_client_reuses_its_tls_read_block() -> None:
    """uvloop reads TLS into a 256 KiB block and shrinks it to what came. Under the client's
    thresholds that block comes from the heap, and its pages are reused: no page fault a read
    (under the hub's, a mapping of its own each time: nine faults for a 30 KB read)."""
    import resource

    assert runtime.tune_malloc(runtime.CLIENT)
    r, w = os.pipe()
    try:

        def reads(n: int) -> None:
            for _ in range(n):
                os.write(w, bytes(30_000))
                assert len(os.read(r, 256 * 1024)) == 30_000

        reads(10)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        reads(1_000)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    finally:
        os.close(r)
        os.close(w)
        runtime.tune_malloc()  # the hub's, as the rest of the suite runs
    assert faults < 500, f"{faults} page faults for 1,000 reads"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_malloc_trim_gives_freed_heap_pages_back() -> None:
    """What the hub's minutely trim is for: heap memory that free() keeps, given back."""
    trim = runtime.malloc_trimmer()
    assert trim is not None
    runtime.tune_malloc()  # as the hub runs: blocks of 64 KiB and more are not on the heap
    # 50 MB in 1 KiB blocks: above pymalloc's 512 bytes (so malloc's), below the mmap
    # threshold (so on the heap). Blocks made after them hold the top of the heap, so free()
    # alone cannot shrink it: the freed pages sit in its middle, where only a trim reaches.
    blocks = [bytes(1024) + bytes([n % 256]) for n in range(50_000)]
    pins = [bytes(2048) + bytes([n % 256]) for n in range(16)]
    del blocks
    kept = _rss_bytes()
    assert trim() == 1, "malloc_trim found nothing to give back"
    assert kept - _rss_bytes() > 25 * 2**20, "less than half of the freed 50 MB came back"
    assert len(pins) == 16


def test_settle_heap_sets_what_is_alive_aside_from_the_collector() -> None:
    import gc

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector could ever free it

    kept = Node()
    try:
        assert runtime.settle_heap() > 0
        tracked = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
        assert id(kept) not in tracked  # a full collection no longer walks it
        later = Node()
        assert id(later) in {id(o) for o in gc.get_objects(generation=0)}
    finally:
        gc.unfreeze()
    assert id(kept) in {id(o) for o in gc.get_objects()}


async def test_the_trimmer_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def trim() -> int:
        calls.append(1)
        return 1

    monkeypatch.setattr(runtime, "malloc_trimmer", lambda: trim)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.trim_memory(stop, every_s=0.01))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(calls) >= 3


_TERMINATED = """
import asyncio, pathlib, sys
from axis.host import runtime

async def main():
    print("ready", flush=True)
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0.6)  # a clean-up that takes a while: the second SIGTERM lands in it
        pathlib.Path(sys.argv[1]).write_text("cleaned up")

runtime.run(main(), stop_on_sigterm=True)
"""


def test_sigterm_cancels_the_main_task_and_a_second_one_waits_for_its_clean_up(
    tmp_path: Path,
) -> None:
    """``run(stop_on_sigterm=True)``: SIGTERM cancels the main coroutine as Ctrl-C would, its
    ``finally`` runs to the end although a second SIGTERM arrives meanwhile, and the process
    exits 143."""
    done = tmp_path / "done"
    child = subprocess.Popen(
        [sys.executable, "-c", _TERMINATED, str(done)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert done.read_text() == "cleaned up"
