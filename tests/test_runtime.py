"""How the commands run their event loop."""

from __future__ import annotations

import asyncio
import sys

import pytest

from axis import runtime


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
