"""The VDXP client (nodes/vdxp.py) against a stand-in adapter on 127.0.0.1 that records every
request as it came (raw headers: their case, order and duplicates) and answers canned JSON.

The expectations are the captures of ../shared/vdxp/ (the real SDK 2.0.1 and a gateway built
on it, secret ``test-secret``), copied here as literals: the key lists of each signature, and
where the values are known, the HMAC itself, so a request is checked byte for byte.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from axis.core import vdxp
from axis.errors import UnexpectedAnswer, Unreachable
from nodes.vdxp import (
    VIETNAM,
    VdxpAnswer,
    VdxpClient,
    VdxpFailed,
    java_hashmap_order,
    read_answer,
)
from tests.helpers import VDXP

SYSTEM = "00.53.W00"
SECRET = "test-secret"
PREFIX = "/XrdAdapter/adapter"
EDXML = b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML>...</edXML>\n'
JSON_TYPE = "application/json"
SHARED = VDXP


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it."""

    method: str
    operation: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of ``name`` spelled exactly so (case variants are other parameters)."""
        return next((v for k, v in self.headers if k == name), None)

    @property
    def names(self) -> list[str]:
        return [k for k, _ in self.headers]

    @property
    def keys(self) -> str:
        return self.header("XroadVnpt-sign-header-key") or ""

    def authenticate(self) -> vdxp.Call:
        return vdxp.authenticate(self.headers, lambda s: SECRET if s == SYSTEM else None)


@dataclass
class Adapter:
    """The stand-in: what it saw, and what it answers (by operation: HTTP status, body,
    content type); an operation not in ``answers`` gets :func:`canned`."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.match_info["operation"]
        raw = [
            (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for k, v in request.raw_headers
        ]
        self.seen.append(Seen(request.method, operation, raw, await request.read()))
        status, body, content_type = self.answers.get(operation) or canned(operation)
        return web.Response(status=status, body=body, content_type=content_type)


def envelope(**fields: Any) -> bytes:
    return json.dumps({"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **fields}).encode()


def canned(operation: str) -> tuple[int, bytes, str]:
    """A plausible success of each operation."""
    if operation == "downloadEdoc":
        return 200, EDXML, "application/octet-stream"
    fields: dict[str, dict[str, Any]] = {
        "sendEdoc": {"DocId": "5bebcfeff858e3e0cc154762"},
        "getEdoc": {"data": base64.b64encode(EDXML).decode()},
        "countReceiveEdoc": {"count": 2},
        "countReceiveStatus": {"count": 0},
    }
    listing = "List" in operation or "Unit" in operation
    return 200, envelope(**fields.get(operation, {"data": []} if listing else {})), JSON_TYPE


@pytest.fixture
async def adapter() -> AsyncIterator[Adapter]:
    stand_in = Adapter()
    app = web.Application()
    app.router.add_route("*", PREFIX + "/{operation}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stand_in.url = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()


def at(stamp: str) -> datetime:
    """The moment an SDK timestamp (``ddMMyyyy'T'HHmmss+SSSS``) names, in Vietnam time."""
    moment = datetime.strptime(stamp[:15], "%d%m%YT%H%M%S")
    return moment.replace(microsecond=int(stamp[16:]) * 1000, tzinfo=VIETNAM)


def client(adapter: Adapter, stamp: str = "02122026T215657+0803", **options: Any) -> VdxpClient:
    return VdxpClient(adapter.url, SYSTEM, SECRET, clock=lambda: at(stamp), **options)


# -- one long-lived client object: sdk-requests-one-client.txt --------------------------------


async def test_one_client_piles_headers_up_as_the_sdk_does(adapter: Adapter) -> None:
    async with client(adapter) as axis:
        assert await axis.get_edoc("AAA") == EDXML
        (await axis.update_status("AAA", "done")).raise_for_fail()
        (await axis.get_received_edoc_list(messagetype="status")).raise_for_fail()
    assert [seen.keys for seen in adapter.seen] == [
        "systemid;docId;filePath;timestamp;Content-Type",
        "systemid;docId;docid;filePath;timestamp;Content-Type;status",
        "systemid;servicetype;messagetype;docId;docid;filePath;timestamp;Content-Type;status",
    ]
    # The captured HMACs: the same signed text, byte for byte.
    assert [seen.header("XroadVnpt-hash-header") for seen in adapter.seen] == [
        "7939802560369428e20641afccd8a48e67524121177f059bb05a3af4d1b0bc86",
        "9e003b62a02947f56c9246195b59cceeb566bc4edbecc5244fbb05a60548d2fc",
        "709acdef8edb512eb85ecd35a064de77d212a4196cb7c3c817105db9f3b2753c",
    ]
    for seen in adapter.seen:
        assert seen.authenticate().system_id == SYSTEM
        assert seen.header("XroadVnpt-timestamp") == "02122026T215657+0803"
    last = adapter.seen[-1]  # both spellings reached the wire, as two headers
    assert (last.header("XroadVnpt-docId"), last.header("XroadVnpt-docid")) == ("AAA", "AAA")


async def test_the_sdk_timestamp_is_fixed_when_the_client_is_built(adapter: Adapter) -> None:
    ticks = iter(datetime(2026, 12, 2, 21, 56, s, tzinfo=VIETNAM) for s in range(10))
    async with VdxpClient(adapter.url, SYSTEM, SECRET, clock=lambda: next(ticks)) as axis:
        await axis.count_receive_edoc()
        await axis.count_receive_status()
    stamps = {seen.header("XroadVnpt-timestamp") for seen in adapter.seen}
    assert stamps == {"02122026T215600+0000"}


async def test_the_default_clock_is_vietnam_time(adapter: Adapter) -> None:
    before = datetime.now(VIETNAM).replace(tzinfo=None)
    async with VdxpClient(adapter.url, SYSTEM, SECRET) as axis:
        await axis.get_agencies_list()
    stamp = adapter.seen[0].header("XroadVnpt-timestamp") or ""
    sent = datetime.strptime(stamp[:15], "%d%m%YT%H%M%S")
    assert stamp[15] == "+" and len(stamp) == 20
    assert abs(sent - before) < timedelta(minutes=1)


async def test_a_later_value_overwrites_an_earlier_one_in_place(adapter: Adapter) -> None:
    async with client(adapter) as axis:
        await axis.update_status("AAA", "processing")
        await axis.update_status("BBB", "done")
    second = adapter.seen[1]
    assert second.keys == "systemid;docid;timestamp;Content-Type;status"
    assert [v for k, v in second.headers if k.lower() == "xroadvnpt-status"] == ["done"]
    assert second.header("XroadVnpt-docid") == "BBB"
    assert dict(axis.held) == {
        "systemid": SYSTEM,
        "docid": "BBB",
        "timestamp": "02122026T215657+0803",
        "Content-Type": "application/json",
        "status": "done",
    }


# -- one call per fresh client: sdk-requests.txt ----------------------------------------------


Call = Callable[[VdxpClient], Awaitable[object]]


@dataclass(frozen=True)
class Captured:
    """One request of sdk-requests.txt: how to make it, and what the SDK sent."""

    operation: str
    call: Call
    keys: str
    stamp: str
    hmac: str | None  # None: not reproducible here (sendEdoc's file was not kept)
    method: str = "POST"
    body: bytes | None = b""  # None: checked elsewhere
    expect: bool = False


DOC = "68edb8c8c2dcb14db773ce44"
AGENCY = b'{"id":"","pcode":"00.53.W00","code":"000.01.01.H53","name":"Test","mail":"t@x.vn",'
CAPTURED = [
    Captured(
        "getReceivedEdocList",
        lambda a: a.get_received_edoc_list(),
        "systemid;servicetype;messagetype;timestamp;Content-Type",
        "02122026T215714+0643",
        "7097d09cac79d71870f449d59e1dd2d8aa66a2bdc96cb5a838209aac0091965e",  # PROTOCOL.md's
    ),
    Captured(
        "getSentEdocList",
        lambda a: a.get_sent_edoc_list("5bebcfeff858e3e0cc154762"),
        "systemid;servicetype;messagetype;docId;timestamp;Content-Type",
        "02122026T215716+0040",
        "8a6bac1153cdeb23acd71d231f97d77fe016eee1c01bbeb1a2e241a071e59e3d",
    ),
    Captured(
        "sendEdoc",
        lambda a: a.send_edoc(EDXML, "000.00.00.H41", ["000.00.00.G22", "000.00.01.H41"]),
        "systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type",
        "02122026T215716+0957",
        None,
        body=None,
    ),
    Captured(
        "getEdoc",
        lambda a: a.get_edoc(DOC),
        "systemid;docId;filePath;timestamp;Content-Type",
        "02122026T215717+0540",
        "b1913533d6f7a5124edbbbca596b1b4ece61df6100fc43d4a2d0e5ff70535d53",
        body=b"{}",
        expect=True,
    ),
    Captured(
        "updateStatus",  # this capture's caller spelled the id docId
        lambda a: a.update_status(DOC, "done", doc_id_key="docId"),
        "systemid;docId;timestamp;Content-Type;status",
        "02122026T215718+0516",
        "a4bf993f0952f1e930b13dbc62033fd65bfbda76fc44af67e9dca92702c89fee",
        body=b"{}",
        expect=True,
    ),
    Captured(
        "countReceiveEdoc",
        lambda a: a.count_receive_edoc(),
        "systemid;timestamp;Content-Type",
        "02122026T215719+0735",
        "a77426deee9a9939cffc7504a791b8c4bc3e8a6b9dee81f0e50ef0bf3c3b93bd",
        body=b"{}",
        expect=True,
    ),
    Captured(
        "countReceiveStatus",  # not captured: countReceiveEdoc's twin (PROTOCOL.md's table)
        lambda a: a.count_receive_status(),
        "systemid;timestamp;Content-Type",
        "02122026T215719+0735",
        None,
        body=b"{}",
        expect=True,
    ),
    Captured(
        "downloadEdoc",
        lambda a: a.download_edoc(DOC),
        "systemid;docId;filePath;timestamp;Content-Type",
        "02122026T215721+0794",
        "146828bb482445a85c8a08804e62a32cb03630573b8b946627c172a366bb5564",
        method="GET",
    ),
    Captured(
        "getAgenciesList",
        lambda a: a.get_agencies_list(),
        "systemid;timestamp;Content-Type",
        "02122026T215724+0342",
        "ddf13523345a2992f7fd62ffb0510deecffcd540f1fb526348d8fcfa0d6e2292",
    ),
    Captured(
        "getAgenciesListQD20",
        lambda a: a.get_agencies_list_qd20(1),
        "systemid;level;timestamp;Content-Type",
        "02122026T215726+0932",
        "a514217d769f296095b813e89208e36c47aa75b0324100cb161a56dc3466a615",
    ),
    Captured(
        "registerAgency",
        lambda a: a.register_agency("000.01.01.H53", "Test", SYSTEM, mail="t@x.vn"),
        "systemid;timestamp;Content-Type",
        "02122026T215728+0852",
        "98a6637aeda82262a2261bfddee6847dbee20378d31618368d572ad948d3aeec",
        body=AGENCY + b'"mobile":"","fax":""}',
        expect=True,
    ),
    Captured(
        "deleteAgency",
        lambda a: a.delete_agency("000.01.01.H53"),
        "systemid;AgencyCode;timestamp;Content-Type",
        "02122026T215730+0814",
        "01d23629e6964ed12ec3bc4ebae5dfbae84d652be065bbcbdca0163dfeb9f3f7",
        body=b"{}",
        expect=True,
    ),
    Captured(
        "getSynchronizeUnit",
        lambda a: a.get_synchronize_unit(),
        "systemid;timestamp;Content-Type",
        "02122026T215732+0869",
        "86491d605d58d33415b933401526e39864a820e6cbc4cff348ac7352b24c1ab0",
    ),
]


@pytest.mark.parametrize("case", CAPTURED, ids=lambda c: c.operation)
async def test_each_operation_sends_what_the_sdk_sends(adapter: Adapter, case: Captured) -> None:
    async with client(adapter, case.stamp) as axis:
        await case.call(axis)
    (seen,) = adapter.seen
    assert (seen.method, seen.operation, seen.keys) == (case.method, case.operation, case.keys)
    assert seen.authenticate().system_id == SYSTEM
    if case.hmac is not None:
        assert seen.header("XroadVnpt-hash-header") == case.hmac
    if case.body is not None:
        assert seen.body == case.body
    expects = [v for k, v in seen.headers if k.lower() == "expect"]
    assert expects == (["100-continue"] if case.expect else [])
    if case.method == "POST" and case.body == b"":
        assert seen.header("Content-Length") == "0"
    content_type = (
        "application/octet-stream" if case.operation == "sendEdoc" else "application/json"
    )
    assert seen.header("Content-Type") == seen.header("XroadVnpt-Content-Type") == content_type
    assert seen.header("XroadVnpt-version") == vdxp.VERSION
    assert seen.header("User-Agent") == vdxp.USER_AGENT


# The header names of two captured requests, minus those aiohttp places itself (Host,
# Content-Length, Expect): the SDK's two HTTP stacks, Apache's and HttpURLConnection's.
WIRE = {
    "getEdoc": (
        "XroadVnpt-systemid XroadVnpt-docId XroadVnpt-filePath XroadVnpt-timestamp Content-Type"
        " XroadVnpt-Content-Type XroadVnpt-sign-header-key XroadVnpt-sign-header"
        " XroadVnpt-hash-header User-Agent XroadVnpt-version Connection Accept-Encoding"
    ),
    "sendEdoc": (
        "Content-Type XroadVnpt-systemid XroadVnpt-servicetype XroadVnpt-messagetype"
        " XroadVnpt-hash-file XroadVnpt-from XroadVnpt-to XroadVnpt-timestamp"
        " XroadVnpt-Content-Type XroadVnpt-sign-header-key XroadVnpt-sign-header"
        " XroadVnpt-hash-header User-Agent XroadVnpt-version Cache-Control Pragma Accept"
        " Connection"
    ),
}


@pytest.mark.parametrize("operation", sorted(WIRE))
async def test_headers_go_out_in_the_sdks_order(adapter: Adapter, operation: str) -> None:
    case = next(c for c in CAPTURED if c.operation == operation)
    async with client(adapter, case.stamp) as axis:
        await case.call(axis)
    own = [n for n in adapter.seen[0].names if n not in ("Host", "Content-Length", "Expect")]
    assert own == WIRE[operation].split()


def unpadded_edxml() -> bytes:
    """An edXML whose SHA-256 has a byte below 0x10, so that hash-file is shorter than 64."""
    n = 0
    while len(vdxp.unpadded_sha256(EDXML + b"<!-- %d -->" % n)) == 64:
        n += 1
    return EDXML + b"<!-- %d -->" % n


async def test_send_edoc_sends_the_file_and_a_line_end(adapter: Adapter) -> None:
    edxml = unpadded_edxml()
    async with client(adapter) as axis:
        answer = await axis.send_edoc(edxml, "000.00.00.H41", ["000.00.00.G22"])
    assert answer.ok and answer.fields["DocId"] == "5bebcfeff858e3e0cc154762"
    (seen,) = adapter.seen
    assert seen.body == edxml + b"\r\n"
    assert seen.header("XroadVnpt-hash-file") == vdxp.unpadded_sha256(edxml)
    assert len(seen.header("XroadVnpt-hash-file") or "") < 64
    assert seen.header("XroadVnpt-to") == '["000.00.00.G22"]'  # a raw JSON array
    assert seen.header("Content-Type") == "application/octet-stream"
    assert seen.header("Accept") == "text/html, image/gif, image/jpeg, */*; q=0.2"


async def test_download_edoc_is_a_get_answered_with_the_file(adapter: Adapter) -> None:
    async with client(adapter) as axis:
        assert await axis.download_edoc(DOC) == EDXML
    (seen,) = adapter.seen
    assert (seen.method, seen.body, seen.header("Content-Length")) == ("GET", b"", None)


async def test_list_filters_are_written_as_the_sdk_writes_them(adapter: Adapter) -> None:
    async with client(adapter) as axis:
        await axis.get_received_edoc_list(
            from_date=datetime(2025, 12, 31, 10, 0, 0, tzinfo=UTC),  # 17:00 in Hanoi
            to_date="31/12/2026 23:59:59",
            status="initial",
            page_size=5,
            page_index=1,
            to=SYSTEM,
        )
    call = adapter.seen[0].authenticate()
    assert call.param("fromDate") == "31/12/2025 17:00:00"
    assert [call.param(k) for k in ("toDate", "status", "pageSize", "pageIndex", "to")] == [
        "31/12/2026 23:59:59",
        "initial",
        "5",
        "1",
        SYSTEM,
    ]


# -- the gateway's session: gateway-requests.txt ----------------------------------------------

GATEWAY_LIST = "systemid;messagetype;toDate;pageSize;fromDate;servicetype;pageIndex"
GATEWAY_HELD = GATEWAY_LIST.replace("toDate;", "docId;toDate;").replace(
    "pageSize;", "filePath;pageSize;"
)
GATEWAY_SEND = "systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type"
GATEWAY_KEYS = [
    "systemid;timestamp;Content-Type",
    "systemid;timestamp;Content-Type",
    "systemid;servicetype;messagetype;to;timestamp;Content-Type",
    *[GATEWAY_SEND] * 4,
    GATEWAY_LIST + ";hash-file;from;to;timestamp;Content-Type;status",
    *[GATEWAY_HELD + ";hash-file;from;to;timestamp;Content-Type;status"] * 6,
    "systemid;timestamp;Content-Type",
    GATEWAY_HELD + ";hash-file;from;to;timestamp;Content-Type;status",
]
GATEWAY_HMACS = [
    "6d8c726592b7c02593b9dad12c9110fd69fe0fcb6c3a6f339eee295f6ee57ffe",
    "6d8c726592b7c02593b9dad12c9110fd69fe0fcb6c3a6f339eee295f6ee57ffe",
    "f52239cd92e54b59e0bd67d16633c76682800f3746a0268ab41291988fc268dd",
    "641eb3c8359f529741b341be8913a4a720b82333ebde52a772cac10635e18d8b",
    "25eaf6fa73af078c1ef72d2b4556abb29503daf04deded0365ed63d43d5fce04",
    "7ac6c7bbeeacf4d9fcdd851b0405f813b9839ee93ed9339263ed948053157d6f",
    "7d8df22e299e32139b8e83ef52224fc2d4542d5c3e731458847e3d90a7472705",
    "3f3def62ddd145992adbaf72be1ab67bed088fe3955e2cea23e407ce862e0a39",
    "8dcad3f287c65134518b447afb923bf570b72764bf63769261a5e326f31fbcec",
    "8dcad3f287c65134518b447afb923bf570b72764bf63769261a5e326f31fbcec",
    "8dcad3f287c65134518b447afb923bf570b72764bf63769261a5e326f31fbcec",
    "3592810f1e42884b74dba6a7c60982fd385053704ed5f552261001b7c695e246",
    "8c203a11d89afabb595515becbb694007045dcf7cb6a183a49e017b66b1264a5",
    "d150c854011292945fcb6c8ab8033388041849a0d5a3314e617d7950bde1bd07",
    "6d8c726592b7c02593b9dad12c9110fd69fe0fcb6c3a6f339eee295f6ee57ffe",
    "d150c854011292945fcb6c8ab8033388041849a0d5a3314e617d7950bde1bd07",
]


async def replay_gateway(adapter: Adapter, files: list[bytes]) -> None:
    """The gateway's sixteen calls, from its two client objects (one for the directory, one
    for documents), in the captured order; ``files`` are the four edXML it sent."""
    e01, e501 = "6a0000000000000000000e01", "6a0000000000000000000501"
    agencies = client(adapter, "03122026T090402+0746")
    docs = client(adapter, "03122026T090402+0859")
    async with agencies, docs:
        await agencies.get_agencies_list()
        await agencies.get_agencies_list()
        await docs.get_received_edoc_list(to=SYSTEM)
        for edxml in files:  # no `to`: the list call's is still held, and goes along
            await docs.send_edoc(edxml, SYSTEM)
        await docs.get_received_edoc_list(
            from_date="01/01/2026 00:00:00",
            to_date="31/12/2026 23:59:59",
            status="initial",
            page_size=5,
            page_index=1,
        )
        for doc_id in (e01, e01, e01, e501):
            await docs.get_edoc(doc_id, file_path="xml")
        await docs.update_status(e501, "done", doc_id_key="docId")
        await docs.update_status(e01, "acceptance", doc_id_key="docId")
        await agencies.register_agency("000.00.01.G09", "Văn phòng", SYSTEM)
        await docs.get_received_edoc_list()


async def test_the_gateways_session_signs_the_keys_it_signed(adapter: Adapter) -> None:
    # The map outgrows Java's first table (12 keys) here: the order is the rehashed one.
    await replay_gateway(adapter, [EDXML + b"%d" % n for n in range(4)])
    assert [seen.keys for seen in adapter.seen] == GATEWAY_KEYS
    for seen in adapter.seen:
        seen.authenticate()
    assert adapter.seen[3].header("XroadVnpt-to") == SYSTEM  # a leftover, not a JSON array
    assert adapter.seen[7].header("XroadVnpt-Content-Type") == "application/json"
    assert adapter.seen[15].header("XroadVnpt-status") == "acceptance"  # left by #14
    assert (
        adapter.seen[14].body
        == (
            '{"id":"","pcode":"00.53.W00","code":"000.00.01.G09","name":"Văn phòng",'
            '"mail":"","mobile":"","fax":""}'
        ).encode()
    )


def gateway_files() -> Iterator[bytes]:
    for n in range(4, 8):
        # Each file as captured ends with the CRLF the SDK adds; the edXML is what precedes it.
        yield (SHARED / "gateway-bodies" / f"request-{n}.edxml").read_bytes().removesuffix(b"\r\n")


@pytest.mark.skipif(
    not (SHARED / "gateway-bodies").is_dir(), reason="needs ../shared/vdxp/gateway-bodies"
)
async def test_the_gateways_session_byte_for_byte(adapter: Adapter) -> None:
    """With the files it sent, every HMAC the gateway's SDK computed comes out the same."""
    await replay_gateway(adapter, list(gateway_files()))
    assert [seen.header("XroadVnpt-hash-header") for seen in adapter.seen] == GATEWAY_HMACS


# -- mode "clean" ----------------------------------------------------------------------------


async def test_clean_mode_sends_no_leftovers(adapter: Adapter) -> None:
    ticks = iter(datetime(2026, 12, 2, 21, 56, s, tzinfo=VIETNAM) for s in range(10))
    async with VdxpClient(
        adapter.url, SYSTEM, SECRET, mode="clean", clock=lambda: next(ticks)
    ) as axis:
        await axis.get_edoc("AAA")
        await axis.update_status("AAA", "done")
        await axis.get_received_edoc_list(messagetype="status")
        await axis.send_edoc(EDXML, "000.00.00.H41")
    assert [seen.keys for seen in adapter.seen] == [
        "systemid;docId;filePath;timestamp;Content-Type",
        "systemid;docid;timestamp;Content-Type;status",
        "systemid;servicetype;messagetype;timestamp;Content-Type",
        "systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type",
    ]
    stamps = [seen.header("XroadVnpt-timestamp") for seen in adapter.seen]
    assert len(set(stamps)) == 4  # a fresh one per call
    for seen in adapter.seen:
        seen.authenticate()


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        VdxpClient("http://127.0.0.1:1/a", SYSTEM, SECRET, mode="quirky")  # type: ignore[arg-type]


# -- answers ----------------------------------------------------------------------------------

REFUSAL = {
    "status": "FAIL",
    "ErrorCode": "104",
    "ErrorDesc": "Don vi gui 002.00.20.H13 khong dung voi ma da dang ky: vxp.saas.03",
    "DocId": "",
}


async def test_a_fail_answer_is_read_whatever_its_http_status(adapter: Adapter) -> None:
    adapter.answers["sendEdoc"] = (403, json.dumps(REFUSAL).encode(), "application/json")
    async with client(adapter) as axis:
        answer = await axis.send_edoc(EDXML, "002.00.20.H13")
    assert not answer.ok
    assert (answer.status, answer.error_code, answer.http_status) == ("FAIL", "104", 403)
    assert answer.error_desc == REFUSAL["ErrorDesc"]
    assert answer.fields == {"DocId": ""}
    with pytest.raises(VdxpFailed, match="sendEdoc failed .*khong dung voi ma") as failed:
        answer.raise_for_fail()
    assert failed.value.answer is answer


async def test_an_ok_answer_is_itself_after_raise_for_fail(adapter: Adapter) -> None:
    adapter.answers["countReceiveEdoc"] = (500, envelope(count=7), "application/json")
    async with client(adapter) as axis:
        answer = (await axis.count_receive_edoc()).raise_for_fail()
    assert (answer.ok, answer.error_code, answer.fields, answer.http_status) == (
        True,
        "0",
        {"count": 7},
        500,
    )


@pytest.mark.parametrize("operation", ["getEdoc", "downloadEdoc"])
async def test_fetching_a_refused_document_raises(adapter: Adapter, operation: str) -> None:
    adapter.answers[operation] = (404, json.dumps(REFUSAL).encode(), "application/json")
    async with client(adapter) as axis:
        fetch = axis.get_edoc if operation == "getEdoc" else axis.download_edoc
        with pytest.raises(VdxpFailed) as failed:
            await fetch(DOC)
    assert failed.value.answer.error_code == "104"
    assert failed.value.answer.fields["DocId"] == ""


async def test_an_answer_that_is_not_json_raises_clearly(adapter: Adapter) -> None:
    adapter.answers["getAgenciesList"] = (502, b"<html>Bad Gateway</html>", "text/html")
    async with client(adapter) as axis:
        with pytest.raises(UnexpectedAnswer, match="getAgenciesList answered HTTP 502") as bad:
            await axis.get_agencies_list()
    assert "Bad Gateway" in str(bad.value)
    assert "not an answer of the adapter API" in str(bad.value)


@pytest.mark.parametrize(
    "body",
    [envelope(), envelope(data=42), envelope(data="not base64!")],
    ids=["no-data", "data-not-text", "data-not-base64"],
)
async def test_get_edoc_without_the_package_raises(adapter: Adapter, body: bytes) -> None:
    adapter.answers["getEdoc"] = (200, body, "application/json")
    async with client(adapter) as axis:
        with pytest.raises(UnexpectedAnswer, match="getEdoc answered OK without the package"):
            await axis.get_edoc(DOC)


async def test_download_edoc_refuses_an_error_page(adapter: Adapter) -> None:
    adapter.answers["downloadEdoc"] = (500, b"Internal Server Error", "text/plain")
    async with client(adapter) as axis:
        with pytest.raises(UnexpectedAnswer, match="downloadEdoc answered HTTP 500"):
            await axis.download_edoc(DOC)


def test_read_answer_takes_what_the_sdk_takes() -> None:
    answer = read_answer("getEdoc", 200, b'{"status":"OK","ErrorCode":0,"ErrorDesc":null}')
    assert answer == VdxpAnswer("OK", "0", "", {}, 200, "getEdoc")
    for body in (b"[]", b'{"ErrorCode":"0"}', b"\xff", b""):
        with pytest.raises(UnexpectedAnswer):
            read_answer("getEdoc", 200, body)


async def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{PREFIX}"
    async with VdxpClient(url, SYSTEM, SECRET) as axis:
        with pytest.raises(Unreachable, match=f"cannot reach the axis adapter at {url}/getEdoc"):
            await axis.get_edoc(DOC)


# -- the SDK's map ------------------------------------------------------------------------------


# What java.util.HashMap iterates after these puts, in this order (printed by Java 17's
# HashMap.keySet()): 19 keys, so the table has grown to 32 buckets; timestamp, Content-Type
# and status share one, docId and docid another.
JAVA_PUT = (
    "systemid timestamp Content-Type servicetype messagetype to hash-file from fromDate toDate"
    " pageSize pageIndex status docId filePath description level AgencyCode docid"
)
JAVA_ITERATES = (
    "systemid messagetype level docId docid toDate filePath pageSize description fromDate"
    " servicetype pageIndex hash-file AgencyCode from to timestamp Content-Type status"
)


def test_the_signed_order_is_java_hashmaps() -> None:
    assert java_hashmap_order(JAVA_PUT.split()) == JAVA_ITERATES.split()
    # Within a bucket, the order of insertion: Java printed "status;timestamp" here.
    assert java_hashmap_order(["status", "timestamp"]) == ["status", "timestamp"]
    assert java_hashmap_order(["timestamp", "status"]) == ["timestamp", "status"]
