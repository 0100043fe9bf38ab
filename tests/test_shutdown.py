"""Graceful shutdown: on SIGTERM the hub stops taking connections, finishes what it holds and
exits cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from axis.core.formats import Organ
from axis.host.datadir import DataDir
from nodes.client import NodeClient
from nodes.profile import Profile
from tests.helpers import cli, eventually, free_port, init_data, serving

pytestmark = pytest.mark.process  # each starts processes: hubs, commands, workers

G22, H41 = "000.00.00.G22", "000.00.00.H41"


async def test_sigterm_finishes_an_upload_in_flight_then_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    for organ_id in (G22, H41):
        cli("axis", "agency", "add", organ_id, "--name", organ_id, "--data", data)
    folder = DataDir(data)
    sender = NodeClient(Profile.load(folder.profile(G22)), hub_url=f"https://localhost:{port}")
    package = sender.build_edoc([Organ(H41, H41)], "Gửi trong lúc tắt máy")  # as registered
    half = len(package) // 2
    half_sent, go_on = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield package[:half]
        half_sent.set()  # asked for more: the first half is on the wire
        await go_on.wait()  # the hub gets SIGTERM while it holds half the body
        yield package[half:]

    async def stopped_listening() -> bool:
        try:
            async with aiohttp.ClientSession() as http:
                await http.get(f"http://127.0.0.1:{admin_port}/healthz")
        except aiohttp.ClientConnectionError:
            return True
        return False

    with serving(data, port, admin_port) as hub:
        upload = asyncio.create_task(sender.post_package(slow_body()))
        await asyncio.wait_for(half_sent.wait(), 20)
        hub.send_signal(signal.SIGTERM)
        await eventually(stopped_listening)  # it took the signal: no new connections
        assert hub.poll() is None, "the hub left with an upload in flight"
        go_on.set()
        sent = await asyncio.wait_for(upload, 20)
        assert sent.created
        code = await asyncio.to_thread(hub.wait, 20)
        assert code == 0
    await sender.close()
    log = (data / "serve.log").read_text()
    assert "Axis hub stopped." in log and "Traceback" not in log
    # What it accepted on the way out is there after a restart.
    with serving(data, port, admin_port):
        receiver = NodeClient(
            Profile.load(folder.profile(H41)), hub_url=f"https://localhost:{port}"
        )
        try:
            items = (await receiver.inbox())["items"]
        finally:
            await receiver.close()
    assert [item["id"] for item in items] == [sent.answer["id"]]
