"""Graceful shutdown: on SIGTERM the hub stops taking connections, finishes what it holds and
exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import ssl
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

    with serving(data, port, admin_port) as hub:
        upload = asyncio.create_task(sender.post_package(slow_body()))
        await asyncio.wait_for(half_sent.wait(), 20)
        hub.send_signal(signal.SIGTERM)
        await eventually(lambda: _stopped_listening(admin_port))  # it took the signal
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


async def _stopped_listening(admin_port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{admin_port}/healthz")
    except aiohttp.ClientConnectionError:
        return True
    return False


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer from ``reader`` (its head and its Content-Length of body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 20)


async def _upload_across_a_sigterm(tmp_path: Path, first_request: bool) -> None:
    """A connection of G22's is open (having carried a request, with ``first_request``) when
    the hub gets SIGTERM; then a POST of a package comes on it: the first bytes of its head
    before the signal (with ``first_request``), the rest once the hub stopped listening. The
    hub answers it, then exits cleanly."""
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    for organ_id in (G22, H41):
        cli("axis", "agency", "add", organ_id, "--name", organ_id, "--data", data)
    profile = Profile.load(DataDir(data).profile(G22))
    sender = NodeClient(profile, hub_url=f"https://localhost:{port}")
    package = sender.build_edoc([Organ(H41, H41)], "Gửi trong lúc tắt máy")
    await sender.close()
    ctx = ssl.create_default_context(cafile=str(profile.ca))
    ctx.load_cert_chain(profile.cert, profile.key)
    # TLS 1.2: the server's Finished comes last, so the hub holds the connection once the
    # handshake is over here (in 1.3 the client is done first).
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    head = (
        b"POST /v1/packages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\n"
        b"Content-Length: %d\r\n\r\n" % len(package)
    )
    with serving(data, port, admin_port) as hub:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        try:
            sent = 0
            if first_request:
                writer.write(b"GET /v1/inbox HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
                sent = 30  # the request line and some of the headers: no request yet for aiohttp
                writer.write(head[:sent])
                await writer.drain()
                await asyncio.sleep(1.0)  # read by the hub (it holds no request of its own)
            hub.send_signal(signal.SIGTERM)
            await eventually(lambda: _stopped_listening(admin_port))  # it took the signal
            assert hub.poll() is None, "the hub left with a request on its way"
            writer.write(head[sent:] + package)
            await writer.drain()
            answer = await _answer(reader)
            assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
        finally:
            writer.close()
        code = await asyncio.to_thread(hub.wait, 20)
        assert code == 0
    log = (data / "serve.log").read_text()
    assert "Axis hub stopped." in log and "Traceback" not in log
    assert "cut off" not in log


async def test_sigterm_waits_for_a_request_whose_head_is_half_received(tmp_path: Path) -> None:
    """aiohttp knows of no request until its head is whole: the hub counts it from its first
    byte, or it would stop reading the connection and leave the request hanging."""
    await _upload_across_a_sigterm(tmp_path, first_request=True)


async def test_sigterm_waits_for_a_new_connection_to_send_its_request(tmp_path: Path) -> None:
    """A connection that has just opened is for a request, whose bytes may still be on their
    way when the signal comes: the hub waits for it (a while: FIRST_REQUEST_S)."""
    await _upload_across_a_sigterm(tmp_path, first_request=False)


async def test_a_request_still_running_after_the_shutdown_timeout_is_cut_off(
    tmp_path: Path,
) -> None:
    """shutdown_timeout_s bounds the stop: an upload that stalls halfway is cut off once it
    has passed, and the hub exits. aiohttp's own shutdown gave such a request 60 s more (the
    body's idle timeout, 30 s, ended it first)."""
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    toml = data / "axis.toml"
    written = toml.read_text()
    assert "shutdown_timeout_s = 30.0 " in written
    toml.write_text(written.replace("shutdown_timeout_s = 30.0 ", "shutdown_timeout_s = 1.0 "))
    cli("axis", "agency", "add", G22, "--name", G22, "--data", data)
    profile = Profile.load(DataDir(data).profile(G22))
    ctx = ssl.create_default_context(cafile=str(profile.ca))
    ctx.load_cert_chain(profile.cert, profile.key)
    with serving(data, port, admin_port) as hub:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        try:
            writer.write(
                b"POST /v1/packages HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/xml\r\nContent-Length: 4000\r\n\r\n<edXML"
            )
            await writer.drain()  # and nothing more: the body stalls
            await asyncio.sleep(1.0)  # its handler is reading it
            hub.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(hub.wait, 15)  # 1 s, the cut-off, the exit
            assert code == 0
        finally:
            writer.close()
    log = (data / "serve.log").read_text()
    assert "requests still running after 1 s are cut off" in log, log[-2000:]
    assert "Axis hub stopped." in log
