"""The national axis's face against what its clients really send: every captured request of
VNPT's SDK and of a gateway built on it (``../shared/vdxp/``), replayed in order over a real
socket with the same headers and bodies, against a system and agencies set up to match.

The captures were answered by a stand-in whose DocIds these requests name (``68edb8c8…``,
``6a00…0501``): each is replaced by the DocId Axis gave the package it stands for, and the
signature made again with the capture's secret (``test-secret``), as the client would have
signed it; nothing else of a request changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest

from axis.core import formats, vdxp
from axis.host.datadir import DataDir
from axis.store.base import Agency, System
from axis.store.sqlite import SqliteStore
from axis.usecases import registration
from tests.conftest import LiveHub, configure, live_hub
from tests.helpers import FIELD, VDXP

SECRET = "test-secret"
SYSTEM = "00.53.W00"
G22, H41, G09 = "000.00.00.G22", "000.00.00.H41", "000.00.00.G09"
SEPARATOR = "=" * 70
BKAV_STATUS = FIELD / "bkav/edoc-service_src_main_resources_status_processing_05.edxml"


@dataclass(frozen=True)
class Captured:
    """One captured request: its number in the file, method, operation, headers, body."""

    label: str
    method: str
    operation: str
    headers: list[tuple[str, str]]
    body: bytes


def captures(name: str) -> list[Captured]:
    """The requests of a capture file, in order (bodies cut in the file come from
    gateway-bodies/request-N.edxml)."""
    found: list[Captured] = []
    for block in (VDXP / name).read_text(encoding="utf-8").split(SEPARATOR):
        lines = [line for line in block.strip().splitlines() if not line.startswith("# ")]
        if not lines:
            continue
        words = lines[0].split()
        label = words[0] if words[0].startswith("#") else str(len(found) + 1)
        method, path = (words[1], words[2]) if words[0].startswith("#") else (words[0], words[1])
        headers, body = [], b""
        for line in lines[1:]:
            if line.startswith("--- body"):
                literal = line.split(": ", 1)[1]
                body = eval(literal)  # the capture writes Python bytes literals  # noqa: S307
                size = int(re.search(r"\((\d+) bytes\)", line).group(1))  # type: ignore[union-attr]
                if len(body) != size and label.startswith("#"):
                    body = (VDXP / "gateway-bodies" / f"request-{label[1:]}.edxml").read_bytes()
                elif len(body) != size:  # the SDK's sendEdoc: Bkav's status 05, then CRLF
                    body = BKAV_STATUS.read_bytes() + b"\r\n"
                assert len(body) == size, label
                break
            key, _, value = line.partition(": ")
            headers.append((key, value))
        found.append(Captured(label, method, path.rsplit("/", 1)[1], headers, body))
    return found


#: Headers the replay does not send as captured: aiohttp writes its own framing.
FRAMING = {"host", "content-length", "connection", "accept-encoding", "expect"}


def resigned(request: Captured, ids: dict[str, str]) -> list[tuple[str, str]]:
    """The request's headers with the stand-in's DocIds replaced by Axis's, signed again."""
    headers = []
    for key, value in request.headers:
        for theirs, ours in ids.items():
            value = value.replace(theirs, ours)
        headers.append((key, value))
    signed = next(v for k, v in headers if k == vdxp.SIGN_HEADER)
    digest = vdxp.hmac_hex(SECRET, signed.encode("utf-8"))
    return [(k, digest if k == vdxp.HASH_HEADER else v) for k, v in headers]


@dataclass
class Face:
    """A hub with its national face on, system 00.53.W00 and its agencies."""

    live: LiveHub
    port: int

    async def replay(self, request: Captured, headers: list[tuple[str, str]]) -> tuple[int, Any]:
        """Send the request as captured, byte for byte, on a socket of its own: HTTP client
        libraries merge headers that differ only in case, which the SDK sends."""
        prefix = self.live.running.hub.settings.vdxp.path_prefix
        lines = [f"{request.method} {prefix}/{request.operation} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in FRAMING]
        lines += [f"Host: 127.0.0.1:{self.port}", "Connection: close"]
        if request.method == "POST":
            lines.append(f"Content-Length: {len(request.body)}")
        if request.body == b"{}" or request.operation == "registerAgency":
            lines.append("Expect: 100-continue")  # as the SDK sends them
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(head + request.body)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), timeout=30)
        finally:
            writer.close()
        while raw.startswith(b"HTTP/1.1 100"):  # the interim answer to Expect
            raw = raw.split(b"\r\n\r\n", 1)[1]
        head_bytes, _, body = raw.partition(b"\r\n\r\n")
        status = int(head_bytes.split(b" ", 2)[1])
        if b"application/json" in head_bytes.lower():
            assert body.isascii(), "the SDK reads answers as US-ASCII"
            return status, json.loads(body)
        return status, body


async def enrol(data: DataDir) -> None:
    """System 00.53.W00 (secret test-secret) speaking for H41, which keeps its certificate
    and the node API, and for G09, which the system registered (no certificate)."""
    store = SqliteStore(data.database)
    await store.open()
    try:
        sealed = vdxp.seal(SECRET, data.systems_key_bytes(), SYSTEM)
        await store.add_system(System(SYSTEM, "Trung tâm tích hợp", sealed, datetime.now(UTC)))
        await registration.register(
            data, store, H41, "UBND tỉnh Nghệ An", hub_url="https://localhost", system_id=SYSTEM
        )
        await store.add_agency(
            Agency(G09, "Bộ Tài chính", b"", f"system:{SYSTEM}:{G09}", datetime.now(UTC),
                   system_id=SYSTEM)
        )  # fmt: skip
    finally:
        await store.close()


@pytest.fixture
async def face(data: DataDir) -> AsyncIterator[Face]:
    await enrol(data)
    async with live_hub(data, vdxp=True) as live:
        assert live.running.vdxp_port is not None
        yield Face(live, live.running.vdxp_port)


def g22_document(live: LiveHub, number: str, day: date, notation: str, to: str = H41) -> bytes:
    """A document of G22's, signed by G22, with the DocumentId a capture answers."""
    node = live.client(G22)
    built = formats.parse_package(formats.load_xml(node.build_edoc([to], "Công văn", number=1)))
    assert isinstance(built, formats.Edoc)
    edoc = dataclasses.replace(
        built,
        document_id=f"{G22},{day:%Y/%m/%d},{number}/{notation}",
        code_number=number,
        code_notation=notation,
        promulgation_date=day,
    )
    return node.signer.sign(formats.build_edoc(edoc))


async def test_every_sdk_request_is_answered_as_the_sdk_reads_it(face: Face) -> None:
    live = face.live
    g22, h41 = live.client(G22), live.client(H41)
    # What the stand-in held: a document G22 sent to H41 (fetched with getEdoc, 68edb8…),
    # the one the Bkav status of the capture answers (7816/VPCP-TTĐT), and one H41 sent
    # (getSentEdocList, 5bebcf…); AAA, for the one-client session.
    received = (
        await g22.post_package(g22_document(live, "7816", date(2015, 9, 30), "VPCP-TTĐT"))
    ).answer
    other = (await g22.send([H41], "Giấy mời họp")).answer
    sent = (await h41.send([G22], "Báo cáo tháng")).answer
    ids = {
        "68edb8c8c2dcb14db773ce44": received["id"],
        "5bebcfeff858e3e0cc154762": sent["id"],
        "AAA": other["id"],
    }
    answers: dict[str, Any] = {}
    for request in captures("sdk-requests.txt") + captures("sdk-requests-one-client.txt"):
        status, answer = await face.replay(request, resigned(request, ids))
        key = request.operation if request.operation not in answers else request.operation + "+"
        answers[key] = answer
        if isinstance(answer, bytes):
            assert status == 200 and answer.startswith(b"<?xml"), request.label
            continue
        assert (status, answer["status"], answer["ErrorCode"]) == (200, "OK", "0"), (
            request.operation, answer,
        )  # fmt: skip
    # The Bkav status 05 (unsigned, as the SDK sends it) reached G22, recorded as unsigned.
    sent_status = answers["sendEdoc"]
    assert isinstance(sent_status, dict)
    assert "unsigned" in str(sent_status["ErrorDesc"]) and len(str(sent_status["DocId"])) == 32
    (row,) = await g22.track(received["id"])
    assert (row["to"], row["status_code"], row["state"]) == (H41, "05", "acknowledged")
    inbox = (await g22.inbox())["items"]
    status_item = next(i for i in inbox if i["id"] == sent_status["DocId"])
    assert "unsigned" in status_item["notes"] and SYSTEM in status_item["notes"]
    # The lists as the SDK parses them.
    listed = answers["getSentEdocList"]
    assert isinstance(listed, dict)
    (only,) = listed["data"]
    assert only["toCode"] == G22 and only["senderDocId"] == sent["id"]
    registered = await live.running.hub.store.get_agency("000.01.01.H53")
    assert registered is not None and registered.system_id == SYSTEM and not registered.active
    assert await live.running.hub.store.get_agency(G09) is not None


async def test_every_gateway_request_is_answered_and_its_deviations_recorded(face: Face) -> None:
    live = face.live
    g22 = live.client(G22)
    waiting = (await g22.send([H41], "Công văn chờ hệ thống")).answer
    ids = {"6a0000000000000000000e01": waiting["id"]}
    seen: dict[str, Any] = {}
    for request in captures("gateway-requests.txt"):
        status, answer = await face.replay(request, resigned(request, ids))
        assert isinstance(answer, dict), request.label
        seen[request.label] = answer
        if request.label in ("#4", "#6", "#7"):  # To vxp.saas.03: no OrganId at all
            assert (status, answer["status"], answer["DocId"]) == (422, "FAIL", ""), answer
            assert "vxp.saas.03" in str(answer["ErrorDesc"]), answer
            continue
        assert (answer["status"], answer["ErrorCode"]) == ("OK", "0"), (request.label, answer)
        if request.label == "#5":
            # The gateway's own package: G09 (its From) to H41, a UUID DocumentId, unsigned,
            # no Competence; the stand-in called it 6a…0501.
            ids["6a0000000000000000000501"] = str(answer["DocId"])
            for rule in ("unsigned", "document-id", "signer-competence"):
                assert rule in str(answer["ErrorDesc"]), answer
    listed = seen["#8"]["data"]
    assert {item["docId"] for item in listed} == {waiting["id"], ids["6a0000000000000000000501"]}
    # 0501 is done (acknowledged), 0e01 marked acceptance: still waiting, marked.
    store = live.running.hub.store
    done = await store.delivery(ids["6a0000000000000000000501"], H41)
    marked = await store.delivery(waiting["id"], H41)
    assert done is not None and done.state.value == "acknowledged" and done.mark == "done"
    assert marked is not None and marked.state.value == "delivered" and marked.mark == "acceptance"
    assert [item["docId"] for item in seen["#16"]["data"]] == [waiting["id"]]
    (row,) = await g22.track(waiting["id"])
    assert row["mark"] == "acceptance"
    counted = {(m, k): n for _, m, k, n in await store.counter_rows(None, None)}
    assert counted[("deviations", f"{SYSTEM} unsigned")] == 1
    assert counted[("face", SYSTEM)] == 1


async def test_a_request_with_one_signed_header_changed_fails_and_stores_nothing(
    face: Face,
) -> None:
    store = face.live.running.hub.store
    before = await store.log_head()
    for name in ("sdk-requests.txt", "sdk-requests-one-client.txt", "gateway-requests.txt"):
        for request in captures(name):
            signed = json.loads(next(v for k, v in request.headers if k == vdxp.SIGN_HEADER))
            target = next(k for k in signed if k != vdxp.SYSTEM_ID)
            changed = [(k, v + "x" if k == target else v) for k, v in request.headers]
            status, answer = await face.replay(request, changed)
            assert isinstance(answer, dict), (name, request.label)
            assert (status, answer["status"], answer["ErrorCode"], answer["DocId"]) == (
                401, "FAIL", "103", "",
            ), (name, request.label, target, answer)  # fmt: skip
    assert await store.log_head() == before  # nothing stored, nothing logged


async def test_an_unknown_system_or_a_wrong_secret_fails(face: Face) -> None:
    (request, *_) = captures("sdk-requests.txt")
    other = [(k, v.replace(SYSTEM, "00.53.W99")) for k, v in request.headers]
    signed = next(v for k, v in other if k == vdxp.SIGN_HEADER)
    other = [
        (k, vdxp.hmac_hex(SECRET, signed.encode()) if k == vdxp.HASH_HEADER else v)
        for k, v in other
    ]
    status, answer = await face.replay(request, other)
    assert isinstance(answer, dict) and (status, answer["ErrorCode"]) == (401, "101")
    wrong = [(k, "0" * 64 if k == vdxp.HASH_HEADER else v) for k, v in request.headers]
    status, answer = await face.replay(request, wrong)
    assert isinstance(answer, dict) and (status, answer["ErrorCode"]) == (401, "102")


@pytest.fixture
async def strict_face(data: DataDir) -> AsyncIterator[Face]:
    await enrol(data)
    configure(data, strict=True)
    async with live_hub(data, vdxp=True) as live:
        assert live.running.vdxp_port is not None
        yield Face(live, live.running.vdxp_port)


async def test_a_strict_face_refuses_what_the_standard_refuses_naming_the_rule(
    strict_face: Face,
) -> None:
    for request in captures("gateway-requests.txt"):
        if request.operation != "sendEdoc":
            continue
        status, answer = await strict_face.replay(request, resigned(request, {}))
        assert isinstance(answer, dict) and answer["status"] == "FAIL", request.label
        if request.label == "#5":
            assert (status, answer["ErrorCode"]) == (422, "112"), answer  # nonconforming
            assert "QCVN 102:2016" in str(answer["ErrorDesc"]), answer
            assert "unsigned" in str(answer["ErrorDesc"]), answer
        else:
            assert (status, answer["ErrorCode"]) == (422, "107"), answer
            assert "vxp.saas.03" in str(answer["ErrorDesc"]), answer
    assert (
        await strict_face.live.running.hub.store.count_received(SYSTEM, formats.PackageKind.EDOC)
        == 0
    )


def call(
    operation: str, body: bytes = b"", **params: str
) -> tuple[Captured, list[tuple[str, str]]]:
    """A request of our own, signed as the SDK signs (secret test-secret)."""
    if operation == "sendEdoc" and "hash-file" not in params:  # as the SDK always sends
        params = {"hash-file": vdxp.unpadded_sha256(body.removesuffix(b"\r\n")), **params}
    keys = [("systemid", SYSTEM), *params.items(), ("timestamp", "03122026T090402+0746")]
    signed = vdxp.sign([(vdxp.PREFIX + k, v) for k, v in keys], SECRET)
    request = Captured("ours", "POST", operation, [], body)
    return request, [("Content-Type", "application/json"), *signed]


@pytest.mark.parametrize(
    ("operation", "body", "params", "code", "status", "words"),
    [
        ("fooBar", b"", {}, "106", 400, "no operation 'fooBar'"),
        ("registerAgency", b"not json", {}, "106", 400, "not JSON"),
        ("registerAgency", b'{"code": "vxp.saas.03", "name": "x", "pcode": "00.53.W00"}', {},
         "106", 400, "not an OrganId"),
        ("registerAgency", b'{"code": "000.00.02.H41", "name": "x", "pcode": "000.00.00.G22"}',
         {}, "110", 403, "pcode"),
        ("getReceivedEdocList", b"", {"pageSize": "abc"}, "106", 400, "pageSize"),
        ("getReceivedEdocList", b"", {"pageIndex": "\u00b2"}, "106", 400, "pageIndex"),
        ("getReceivedEdocList", b"", {"pageIndex": "9" * 25}, "106", 400, "pageIndex"),
        ("getReceivedEdocList", b"", {"fromDate": "2026-01-01"}, "106", 400, "fromDate"),
        ("getReceivedEdocList", b"", {"messagetype": "fax"}, "106", 400, "messagetype"),
        ("updateStatus", b"{}", {"docId": "0" * 32, "status": "bogus"}, "106", 400, "done"),
        ("updateStatus", b"{}", {"docId": "f" * 32, "status": "done"}, "109", 404, "f" * 32),
        ("getEdoc", b"{}", {}, "106", 400, "docId is required"),
        ("deleteAgency", b"{}", {"AgencyCode": "000.00.00.G22"}, "110", 403, "G22"),
        ("sendEdoc", b"<edXML", {"from": "000.00.00.G09", "hash-file": "00"}, "106", 400,
         "hash-file"),
        ("sendEdoc", b"<x/>", {"from": "002.00.20.H13"}, "104", 403,
         "Don vi gui 002.00.20.H13 khong dung voi ma da dang ky: 00.53.W00"),
        ("sendEdoc", b"<edXML", {"from": "000.00.00.G09"}, "107", 400, "not well-formed"),
    ],
)  # fmt: skip
async def test_bad_input_of_every_kind_is_a_clear_fail_and_stores_nothing(
    face: Face,
    operation: str,
    body: bytes,
    params: dict[str, str],
    code: str,
    status: int,
    words: str,
) -> None:
    store = face.live.running.hub.store
    before = await store.log_head()
    request, headers = call(operation, body, **params)
    got, answer = await face.replay(request, headers)
    assert (got, answer["status"], answer["ErrorCode"], answer["DocId"]) == (
        status, "FAIL", code, "",
    ), answer  # fmt: skip
    assert words in answer["ErrorDesc"], answer
    assert await store.log_head() == before


async def test_a_package_from_an_agency_of_no_system_of_the_caller_is_refused(face: Face) -> None:
    """The system's `from` is right, but the edXML From is a native agency (G22): 105."""
    live = face.live
    package = live.client(G22).build_edoc([H41], "Không phải của hệ thống", number=5)
    request, headers = call("sendEdoc", package + b"\r\n", **{"from": SYSTEM})
    status, answer = await face.replay(request, headers)
    assert (status, answer["ErrorCode"]) == (403, "105"), answer
    assert "000.00.00.G22" in answer["ErrorDesc"]
    assert await live.running.hub.store.count_received(SYSTEM, formats.PackageKind.EDOC) == 0


async def test_a_revoked_system_is_refused_and_a_native_agency_is_still_served(face: Face) -> None:
    live = face.live
    request, headers = call("countReceiveEdoc", b"{}")
    assert (await face.replay(request, headers))[1]["status"] == "OK"
    assert await live.running.hub.store.set_system_active(SYSTEM, False)
    status, answer = await face.replay(request, headers)
    assert (status, answer["ErrorCode"]) == (401, "101")
    sent = await live.client(G22).send([H41], "Vẫn phục vụ")  # the bystander
    assert sent.created


async def test_nothing_is_read_from_a_caller_that_is_not_authenticated(face: Face) -> None:
    """A stranger announcing 40 MB gets its answer before sending a byte of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", face.port)
    try:
        writer.write(
            b"POST /XrdAdapter/adapter/sendEdoc HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 40000000\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head


async def test_a_leftover_status_is_no_filter_and_a_revoked_agency_stays_revoked(
    face: Face,
) -> None:
    live = face.live
    waiting = (await live.client(G22).send([H41], "Chờ xử lý")).answer
    request, headers = call("updateStatus", b"{}", docid=waiting["id"], status="processing")
    assert (await face.replay(request, headers))[1]["status"] == "OK"
    other = (await live.client(G22).send([H41], "Văn bản mới")).answer
    # The SDK's next list carries docid and status=processing from that call: not a filter.
    request, headers = call(
        "getReceivedEdocList", servicetype="eDoc", messagetype="edoc", docid=waiting["id"],
        status="processing",
    )  # fmt: skip
    listed = (await face.replay(request, headers))[1]["data"]
    assert {i["docId"] for i in listed} == {waiting["id"], other["id"]}
    request, headers = call("getReceivedEdocList", messagetype="edoc", status="processing")
    assert [i["docId"] for i in (await face.replay(request, headers))[1]["data"]] == [
        waiting["id"]
    ]  # asked for on its own, it is a filter
    # G09, revoked by the operator, is not brought back by the system's registerAgency.
    await live.running.hub.store.set_agency_active(G09, False)
    body = json.dumps({"id": "", "pcode": SYSTEM, "code": G09, "name": "Bộ Tài chính"}).encode()
    status, answer = await face.replay(*call("registerAgency", body))
    assert (status, answer["ErrorCode"]) == (403, "110") and "revoked" in answer["ErrorDesc"]
    g09 = await live.running.hub.store.get_agency(G09)
    assert g09 is not None and not g09.active


async def test_a_closed_code_sends_nothing_on_this_face_either(face: Face) -> None:
    store = face.live.running.hub.store
    await store.close_code(G09, "G98.01")
    body = (VDXP / "gateway-bodies" / "request-5.edxml").read_bytes()
    status, answer = await face.replay(*call("sendEdoc", body, **{"from": SYSTEM}))
    assert (status, answer["ErrorCode"]) == (403, "110"), answer
    assert "G98.01" in answer["ErrorDesc"]
