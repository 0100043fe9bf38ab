"""The routes that take fewer requests per document: an inbox read carrying the packages
(``GET /v1/inbox?bodies=1``) and an acknowledgement of many (``POST /v1/acks``). Each keeps
SPEC §7's guarantees: exact bytes, at-least-once (a package leaves the inbox only when it is
acknowledged, so a crash between the read and the ack loses nothing), idempotent acks; and
bad input is refused whole, changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from axis.errors import AxisError
from axis.host.datadir import DataDir
from axis.http.sockets import free_port
from nodes.client import NodeClient
from nodes.profile import Profile
from tests.conftest import LiveHub, configure, live_hub
from tests.helpers import assert_problem, cli, init_data, serving

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"


async def _send(hub: LiveHub, n: int, to: str = H41, first: int = 1) -> list[tuple[str, bytes]]:
    sender = hub.client(G22)
    sent = []
    for i in range(first, first + n):
        package = sender.build_edoc([to], f"Văn bản số {i}", number=i)
        sent.append(((await sender.post_package(package)).answer["id"], package))
    return sent


async def test_a_read_carries_the_exact_packages_and_one_ack_clears_them(hub: LiveHub) -> None:
    sent = await _send(hub, 3)
    recipient, sender = hub.client(H41), hub.client(G22)
    page = await recipient.take()
    assert [(i["id"], i["body"]) for i in page["items"]] == sent  # the bytes the sender signed
    assert all(i["sha256"] == hashlib.sha256(i["body"]).hexdigest() for i in page["items"])
    assert all(i["size"] == len(i["body"]) for i in page["items"])
    # Carried is fetched, as a GET is; still in the inbox until acknowledged.
    for package_id, _ in sent:
        assert [d["state"] for d in await sender.track(package_id)] == ["delivered"]
    assert [i["id"] for i in (await recipient.inbox())["items"]] == [pid for pid, _ in sent]

    ids = [pid for pid, _ in sent]
    assert await recipient.ack_many(ids) == {"acknowledged": ids, "refused": []}
    assert await recipient.ack_many(ids) == {"acknowledged": ids, "refused": []}  # idempotent
    assert (await recipient.take())["items"] == []
    for package_id in ids:
        assert [d["state"] for d in await sender.track(package_id)] == ["acknowledged"]
    cli("axis", "log", "verify", "--data", hub.data.root)  # each move logged and chained


async def test_the_byte_budget_carries_the_oldest_and_lists_the_rest(hub: LiveHub) -> None:
    sent = await _send(hub, 3)
    recipient, sender = hub.client(H41), hub.client(G22)
    page = await recipient.take(max_bytes=len(sent[0][1]) + len(sent[1][1]) - 1)
    assert [i["id"] for i in page["items"]] == [pid for pid, _ in sent]
    assert [i["body"] for i in page["items"]] == [sent[0][1], None, None]
    # What was not carried was not fetched: a recall still takes it back.
    assert [d["state"] for d in await sender.track(sent[1][0])] == ["queued"]
    nothing = await recipient.take(max_bytes=0)
    assert [i["body"] for i in nothing["items"]] == [None, None, None]
    # A page is a page: limit and cursor as on the plain inbox.
    first = await recipient.take(limit=2)
    assert [i["id"] for i in first["items"]] == [sent[0][0], sent[1][0]] and first["next"]
    rest = await recipient.take(after=first["next"])
    assert [(i["id"], i["body"]) for i in rest["items"]] == [sent[2]]


async def test_the_hub_caps_what_one_read_carries(staffed: DataDir) -> None:
    configure(staffed, inbox_bytes=1)
    async with live_hub(staffed) as hub:
        sent = await _send(hub, 2)
        page = await hub.client(H41).take(max_bytes=10**9)
        assert [(i["id"], i["body"]) for i in page["items"]] == [(pid, None) for pid, _ in sent]
        body = await hub.client(H41).get(sent[0][0])  # fetched alone, as before
        assert body == sent[0][1]


async def test_a_recalled_package_is_not_carried(hub: LiveHub) -> None:
    (package_id, _), (kept, kept_body) = await _send(hub, 2)
    await hub.client(G22).recall(package_id)
    page = await hub.client(H41).take()
    # The recall (a status-like package of its own) and the kept document; never the recalled.
    ids = [i["id"] for i in page["items"]]
    assert package_id not in ids and kept in ids
    assert next(i["body"] for i in page["items"] if i["id"] == kept) == kept_body


async def test_a_batch_ack_refuses_each_what_it_must_and_takes_the_rest(hub: LiveHub) -> None:
    [(mine, _)] = await _send(hub, 1)
    [(theirs, _)] = await _send(hub, 1, to=H10, first=2)
    recipient = hub.client(H41)
    unknown, malformed = "0" * 32, "../../etc/passwd"
    answer = await recipient.ack_many([mine, theirs, unknown, malformed, mine])
    assert answer["acknowledged"] == [mine]  # once, though named twice
    refused = {r["id"]: (r["type"].rsplit(":", 1)[1], r["status"]) for r in answer["refused"]}
    assert refused == {
        theirs: ("not-allowed", 403),
        unknown: ("unknown-document", 404),
        malformed: ("unknown-document", 404),
    }
    # H10's package is untouched by H41's attempt.
    assert [d["state"] for d in await hub.client(G22).track(theirs)] == ["queued"]


@pytest.mark.parametrize(
    ("body", "content_type", "problem", "status"),
    [
        (b'{"ids": ["%s"]}', "text/plain", "unsupported-media-type", 415),
        (b"not json", "application/json", "schema-violation", 422),
        (b'["%s"]', "application/json", "schema-violation", 422),
        (b'{"ids": "%s"}', "application/json", "schema-violation", 422),
        (b'{"ids": [1, "%s"]}', "application/json", "schema-violation", 422),
        (b'{"ids": ["%s"' + b', "x"' * 600 + b"]}", "application/json", "schema-violation", 422),
        (b'{"ids": ["%s", "' + b"a" * 70_000 + b'"]}', "application/json", "too-large", 413),
    ],
)
async def test_bad_batches_are_refused_whole(
    hub: LiveHub, body: bytes, content_type: str, problem: str, status: int
) -> None:
    [(package_id, _)] = await _send(hub, 1)
    recipient = hub.client(H41)
    with pytest.raises(AxisError) as exc:
        await recipient._request(
            "POST",
            "/v1/acks",
            data=body.replace(b"%s", package_id.encode()),
            headers={"Content-Type": content_type},
        )
    assert_problem(exc, problem, status)
    assert [i["id"] for i in (await recipient.inbox())["items"]] == [package_id]  # not acked


@pytest.mark.parametrize("query", ["bodies=maybe", "bodies=1&max_bytes=-1", "bodies=1&limit=x"])
async def test_bad_reads_are_refused(hub: LiveHub, query: str) -> None:
    with pytest.raises(AxisError) as exc:
        await hub.client(H41)._request("GET", f"/v1/inbox?{query}")
    assert_problem(exc, "schema-violation", 422)


@pytest.mark.process  # kills a hub process
async def test_a_crash_between_a_batched_read_and_its_ack_loses_nothing(tmp_path: Path) -> None:
    """The hub dies (SIGKILL) after a read carried the packages and before their ack: the
    restarted hub carries the same bytes again, one ack clears them, the log verifies."""
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    for organ_id, name in ((G22, "Văn phòng Chính phủ"), (H41, "UBND tỉnh Quảng Ninh")):
        cli("axis", "agency", "add", organ_id, "--name", name, "--data", data)
    folder = DataDir(data)
    url = f"https://localhost:{port}"
    sender = NodeClient(Profile.load(folder.profile(G22)), hub_url=url)
    recipient = NodeClient(Profile.load(folder.profile(H41)), hub_url=url, retries=40)
    try:
        with serving(data, port, admin_port) as hub:
            await sender.directory()
            sent = []
            for n in range(1, 6):
                package = sender.build_edoc([H41], f"Trước khi sập {n}", number=n)
                sent.append(((await sender.post_package(package)).answer["id"], package))
            first = await recipient.take()
            assert [(i["id"], i["body"]) for i in first["items"]] == sent
            hub.kill()
            await asyncio.to_thread(hub.wait)
        with serving(data, port, admin_port):
            again = await recipient.take()
            assert [(i["id"], i["body"]) for i in again["items"]] == sent
            ids = [pid for pid, _ in sent]
            assert (await recipient.ack_many(ids))["acknowledged"] == ids
            assert (await recipient.take())["items"] == []
    finally:
        await sender.close()
        await recipient.close()
    cli("axis", "log", "verify", "--data", data)
    states = json.loads(cli("axis", "stats", "--json", "--data", data).stdout)["by_state"]
    assert states == {"acknowledged": 5}
