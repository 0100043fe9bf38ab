"""Push delivery end to end: a real hub pushes over TLS to real `axis-node listen` processes."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from axis.errors import AxisError
from axis.host.datadir import DataDir
from axis.http.sockets import bind
from nodes.client import NodeClient
from nodes.listen import PushReceiver, Stored, listen_ssl_context, listening
from nodes.profile import Profile
from tests.conftest import LiveHub, configure
from tests.helpers import (
    assert_problem,
    cli,
    eventually,
    free_port,
    init_data,
    node_listening,
    serving,
)

G22, H41, H58 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H58"


async def _register_listener(hub: LiveHub) -> tuple[Path, int, Path]:
    port = free_port()
    profile = await hub.register(H58, "UBND TP Hồ Chí Minh", endpoint=f"https://127.0.0.1:{port}/")
    return profile.root, port, profile.root / "inbox-files"


async def _state(hub: LiveHub, package_id: str, organ_id: str) -> dict[str, object]:
    rows = await hub.client(G22).track(package_id)
    return next(r for r in rows if r["to"] == organ_id)


@pytest.mark.process  # axis-node listen as its own process
async def test_a_push_arrives(push_hub: LiveHub) -> None:
    hub = push_hub
    profile, port, out = await _register_listener(hub)
    sender = hub.client(G22)
    with node_listening(profile, port, out):
        package = sender.build_edoc([H58, H41], "Công điện khẩn")
        answer = (await sender.post_package(package)).answer
        written = out / f"{answer['id']}.xml"

        async def arrived() -> bool:
            return written.exists()

        await eventually(arrived)
        assert written.read_bytes() == package  # exactly the signed bytes

        async def delivered() -> bool:
            return (await _state(hub, answer["id"], H58))["state"] == "delivered"

        await eventually(delivered)
    assert (await _state(hub, answer["id"], H41))["state"] == "queued"  # H41 pulls
    hops = await sender.trace(answer["id"])
    assert (H58, "delivered", "push") in [(h["organ_id"], h["event"], h["detail"]) for h in hops]
    # Pull keeps working for a pushed agency: it is in the inbox until acknowledged.
    assert [i["id"] for i in (await hub.client(H58).inbox())["items"]] == [answer["id"]]


@pytest.mark.process  # axis-node listen as its own process
async def test_a_push_to_an_endpoint_that_is_down_is_retried(push_hub: LiveHub) -> None:
    hub = push_hub
    profile, port, out = await _register_listener(hub)
    sender = hub.client(G22)
    answer = (await sender.send([H58], "Gửi khi máy chủ nhận đang tắt")).answer

    async def failed_twice() -> bool:
        return int(str((await _state(hub, answer["id"], H58))["attempts"])) >= 2

    await eventually(failed_twice)
    row = await _state(hub, answer["id"], H58)
    assert row["state"] == "queued" and row["last_error"]
    with node_listening(profile, port, out):

        async def arrived() -> bool:
            return (out / f"{answer['id']}.xml").exists()

        await eventually(arrived)

        async def delivered() -> bool:
            return (await _state(hub, answer["id"], H58))["state"] == "delivered"

        await eventually(delivered)


@pytest.mark.parametrize("push_hub", [2], indirect=True)
@pytest.mark.process  # runs the commands
async def test_a_push_that_gives_up_leaves_the_package_to_pull(push_hub: LiveHub) -> None:
    hub = push_hub
    await _register_listener(hub)  # nobody listens there
    answer = (await hub.client(G22).send([H58], "Không ai nhận")).answer

    async def gave_up() -> bool:
        return (await _state(hub, answer["id"], H58))["state"] == "failed"

    await eventually(gave_up)
    row = await _state(hub, answer["id"], H58)
    assert row["attempts"] == 2 and "max_attempts 2" in str(row["last_error"])
    # Operators see it too, with the token; without it, nothing.
    token = hub.data.admin_token.read_text().strip()
    url = f"{hub.running.admin_url}/v1/deliveries?state=failed"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            failed = await r.json()
        assert [(d["package_id"], d["to"]) for d in failed] == [(answer["id"], H58)]
        async with http.get(url) as r:
            assert r.status == 403
    listed = cli("axis", "deliveries", "--json", "--data", hub.data.root).stdout
    assert [d["package_id"] for d in json.loads(listed)] == [answer["id"]]
    recipient = hub.client(H58)
    assert [i["id"] for i in (await recipient.inbox())["items"]] == [answer["id"]]
    await recipient.get(answer["id"])
    assert (await _state(hub, answer["id"], H58))["state"] == "delivered"


@pytest.mark.process  # axis-node listen as its own process
async def test_a_revoked_agency_gets_no_pushes(push_hub: LiveHub) -> None:
    hub = push_hub
    profile, port, out = await _register_listener(hub)
    answer = (await hub.client(G22).send([H58], "Trước khi thu hồi")).answer
    await hub.running.hub.store.set_agency_active(H58, False)
    with node_listening(profile, port, out):

        async def failed() -> bool:
            return (await _state(hub, answer["id"], H58))["state"] == "failed"

        await eventually(failed)
    assert not (out / f"{answer['id']}.xml").exists()
    with pytest.raises(AxisError) as exc:
        await hub.client(H58).inbox()
    assert_problem(exc, "not-allowed", 403)


async def test_the_push_endpoint_takes_only_the_hub_and_only_good_packages(
    hub: LiveHub, tmp_path: Path
) -> None:
    profile = await hub.register(H58, "UBND TP Hồ Chí Minh")
    out = tmp_path / "received"
    sender = hub.client(G22)
    package = sender.build_edoc([H58], "Đẩy thử")
    package_id = "ab" * 16
    async with listening(profile, 0, out) as port:
        url = f"https://127.0.0.1:{port}/"
        as_hub = _client_context(hub.data.hub_cert, hub.data.hub_key, profile.ca)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=as_hub)) as http:
            for _ in range(2):  # a repeated push is harmless: same id, same file
                async with http.post(url, data=package, headers=_headers(package_id)) as r:
                    assert r.status == 200, await r.text()
            assert (out / f"{package_id}.xml").read_bytes() == package

            tampered = package.replace("Đẩy thử".encode(), "Đẩy giả".encode())
            async with http.post(url, data=tampered, headers=_headers("cd" * 16)) as r:
                assert r.status == 422
                assert (await r.json())["type"] == "urn:axis:problem:invalid-signature"
            async with http.post(url, data=package, headers=_headers("../../etc")) as r:
                assert r.status == 422
            assert sorted(p.name for p in out.iterdir()) == [f"{package_id}.xml"]

        # Another agency's certificate is not the hub's: the TLS handshake fails.
        g22 = sender.profile
        as_agency = _client_context(g22.cert, g22.key, profile.ca)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=as_agency)) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.post(url, data=package, headers=_headers("ef" * 16)):
                    pass
    assert not (out / f"{'ef' * 16}.xml").exists()


def _client_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(cert, key)
    return ctx


def _headers(package_id: str) -> dict[str, str]:
    return {"Content-Type": "application/xml", "Axis-Package-Id": package_id}


@pytest.mark.process  # runs the commands
async def test_a_push_in_flight_when_the_hub_is_killed_is_resumed_at_restart(
    tmp_path: Path,
) -> None:
    """The worst moment: the endpoint has stored the package but the hub dies (SIGKILL)
    before it hears the 2xx. The restarted hub finds the dead one's lease and pushes again at
    once (not after lease_s); the endpoint stores the same file again, so the package is new
    work once; the log verifies."""
    data = tmp_path / "data"
    port, admin_port, push_port = free_port(), free_port(), free_port()
    init_data(data, port)
    configure(DataDir(data), lease_s=600.0)  # only a resumed lease can push within the test
    cli("axis", "agency", "add", G22, "--name", "Văn phòng Chính phủ", "--data", data)
    endpoint = f"https://127.0.0.1:{push_port}/"
    cli("axis", "agency", "add", H58, "--name", "UBND TP HCM", "--endpoint", endpoint,
        "--data", data)  # fmt: skip
    folder = DataDir(data)
    profile = Profile.load(folder.profile(H58))
    receiver = PushReceiver(profile, tmp_path / "received")
    arrivals: list[str] = []
    first_stored, hub_gone = asyncio.Event(), asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        stored = receiver.store(request.headers["Axis-Package-Id"], body)
        arrivals.append(stored.package_id)
        if len(arrivals) == 1:
            first_stored.set()
            await hub_gone.wait()  # the 2xx goes to a hub that is no longer there
        return web.json_response({"id": stored.package_id})

    app = web.Application()
    app.router.add_post("/", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(
        runner, bind("127.0.0.1", push_port), ssl_context=listen_ssl_context(profile)
    ).start()
    sender = NodeClient(Profile.load(folder.profile(G22)), hub_url=f"https://localhost:{port}")
    try:
        with serving(data, port, admin_port) as hub:
            answer = (await sender.send([H58], "Đẩy lúc máy chủ sập")).answer
            await asyncio.wait_for(first_stored.wait(), 20)
            hub.kill()
            await asyncio.to_thread(hub.wait)
        hub_gone.set()
        restarted = time.monotonic()
        with serving(data, port, admin_port):

            async def delivered() -> bool:
                rows = await sender.track(answer["id"])
                return bool(rows[0]["state"] == "delivered")

            await eventually(delivered, timeout=30)
            assert time.monotonic() - restarted < 60  # well inside the 600 s lease
            assert "resuming 1 pushes" in (data / "serve.log").read_text()
            recipient = NodeClient(profile, hub_url=f"https://localhost:{port}")
            try:
                assert [i["id"] for i in (await recipient.inbox())["items"]] == [answer["id"]]
                await recipient.ack(answer["id"])
            finally:
                await recipient.close()
    finally:
        await sender.close()
        await runner.cleanup()
    assert arrivals == [answer["id"], answer["id"]]  # pushed twice: at least once, by design
    assert [p.name for p in (tmp_path / "received").iterdir()] == [f"{answer['id']}.xml"]
    cli("axis", "log", "verify", "--data", data)


@pytest.mark.process  # runs the commands
def test_a_second_hub_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    with serving(data, port, admin_port) as first:
        second = cli("axis", "serve", "--data", data, "--port", str(free_port()),
                     "--admin-port", str(free_port()), check=False)  # fmt: skip
        assert second.returncode != 0
        assert f"another axis serve (pid {first.pid}) is serving" in second.stderr
    # The lock goes with the process, SIGKILL included: the next hub starts.
    with serving(data, port, admin_port) as hub:
        hub.kill()
        hub.wait()
    with serving(data, port, admin_port):
        pass


async def test_a_push_being_written_when_the_endpoint_stops_is_finished_first(
    hub: LiveHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping server cancels the request whose package is being written, not the
    thread writing it: the receiver waits for that write (settle), so whoever removes the
    folder next does not pull it from under the rename."""
    profile = await hub.register(H58, "UBND TP Hồ Chí Minh")
    body = hub.client(G22).build_edoc([H58], "Đang ghi thì dừng")
    receiver = PushReceiver(profile, tmp_path / "received")
    real = receiver.store

    def slow(package_id: str, package: bytes) -> Stored:
        time.sleep(0.3)  # the request is cancelled meanwhile
        return real(package_id, package)

    monkeypatch.setattr(receiver, "store", slow)
    package_id = "ab" * 16
    request = asyncio.create_task(receiver.take(package_id, body))
    await asyncio.sleep(0.05)
    request.cancel()
    await receiver.settle()
    assert (tmp_path / "received" / f"{package_id}.xml").read_bytes() == body
    assert not list((tmp_path / "received").glob(".*.tmp"))


async def test_the_same_push_written_twice_at_once_is_stored_once(
    hub: LiveHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push the hub stopped waiting for is still being written when its next try arrives:
    both writes of the one package succeed (each renames a temp file of its own), and one
    file holds it. Both wait at the rename until both have written, the order that made
    the second rename fail when the two shared a temp file's name."""
    profile = await hub.register(H58, "UBND TP Hồ Chí Minh")
    body = hub.client(G22).build_edoc([H58], "Hai lần cùng lúc")
    receiver = PushReceiver(profile, tmp_path / "received")
    both_written = threading.Barrier(2, timeout=10)
    real_replace = os.replace

    def replace_when_both_wrote(src: Any, dst: Any) -> None:
        both_written.wait()
        real_replace(src, dst)

    monkeypatch.setattr("nodes.listen.os.replace", replace_when_both_wrote)
    package_id = "cd" * 16
    first, second = await asyncio.gather(
        asyncio.to_thread(receiver.store, package_id, body),
        asyncio.to_thread(receiver.store, package_id, body),
    )
    assert first.path == second.path == tmp_path / "received" / f"{package_id}.xml"
    assert first.path.read_bytes() == body
    assert [p.name for p in (tmp_path / "received").iterdir()] == [f"{package_id}.xml"]


async def test_a_push_write_that_fails_leaves_no_temp_file(
    hub: LiveHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (a full disk, here its fsync) is the push's failure, and leaves
    nothing behind: each try has a temp file of its own, which nothing else would remove."""
    profile = await hub.register(H58, "UBND TP Hồ Chí Minh")
    body = hub.client(G22).build_edoc([H58], "Đĩa đầy")
    receiver = PushReceiver(profile, tmp_path / "received")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nodes.listen.os.fsync", full)
    with pytest.raises(OSError):
        receiver.store("ef" * 16, body)
    assert list((tmp_path / "received").iterdir()) == []
