"""How the commands run their event loop."""

from __future__ import annotations

import asyncio
import sys

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_runs() -> None:
    trim = runtime.malloc_trimmer()
    assert trim is not None
    blocks = [bytearray(100_000) for _ in range(200)]  # 20 MB, freed: something to give back
    del blocks
    assert trim() in (0, 1)


async def test_the_trimmer_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runtime, "malloc_trimmer", lambda: lambda: calls.append(1) or 1)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.trim_memory(stop, every_s=0.01))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(calls) >= 3
