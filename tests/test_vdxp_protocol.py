"""The national axis's own API as VNPT's SDK speaks it (axis/core/vdxp.py), against the requests
the real SDK 2.0.1 and a REST gateway built on it sent to a capture server
(../shared/vdxp/*.txt, PROTOCOL.md there): every captured request authenticates with the
secret it was made with, any change to what was signed is refused with the fault that says
why, and the tables and small codecs of the face say what PROTOCOL.md says."""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axis import errors
from axis.core import vdxp
from axis.core.lifecycle import DeliveryState
from axis.core.vdxp import (
    HASH_HEADER,
    PREFIX,
    SIGN_HEADER,
    SIGN_KEYS,
    SYSTEM_ID,
    Call,
    CallFailed,
    Fault,
    ItemState,
    Mark,
)
from tests.helpers import FIELD, VDXP

pytestmark = pytest.mark.skipif(
    not (VDXP / "PROTOCOL.md").exists(), reason="needs ../shared/vdxp (the captured requests)"
)

SECRET = "test-secret"
SYSTEM = "00.53.W00"
SEPARATOR = "=" * 70
#: The test vector of PROTOCOL.md: the first request of sdk-requests.txt under SECRET.
VECTOR = "7097d09cac79d71870f449d59e1dd2d8aa66a2bdc96cb5a838209aac0091965e"
#: The sendEdoc of sdk-requests.txt sent this sample, followed by the CRLF the SDK appends.
SDK_SENT_SAMPLE = FIELD / "bkav" / "edoc-service_src_main_resources_status_processing_05.edxml"
RESERVED = {SIGN_HEADER, SIGN_KEYS, HASH_HEADER}


# -- the captures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    """One captured request: where it is, its method and operation, its headers as sent."""

    where: str
    method: str
    operation: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str:
        """The value of the header spelt exactly ``name`` (the capture has each once)."""
        found = [v for k, v in self.headers if k == name]
        assert len(found) == 1, f"{self.where}: {name} {len(found)} times"
        return found[0]

    @property
    def signed(self) -> list[tuple[str, str]]:
        """The headers the sign-header names, in its order, with the values it signed."""
        pairs: list[tuple[str, str]] = json.loads(self.header(SIGN_HEADER), object_pairs_hook=list)
        return [(k, v) for k, v in pairs]

    def replaced(self, name: str, value: str | None) -> list[tuple[str, str]]:
        """The headers with ``name`` (exact spelling) given ``value``, or left out if None."""
        assert any(k == name for k, _ in self.headers), name
        if value is None:
            return [(k, v) for k, v in self.headers if k != name]
        return [(k, value if k == name else v) for k, v in self.headers]

    def __str__(self) -> str:
        return self.where


def parse_capture(path: Path) -> list[Captured]:
    """The requests of a capture file: blocks after a line of 70 '=', each a request line
    (``#N`` before it in the gateway's file), ``Name: value`` headers, then ``--- body``;
    before the first block, only ``# `` comment lines."""
    lines = path.read_text(encoding="utf-8").split("\n")
    first = lines.index(SEPARATOR)
    assert all(line.startswith("# ") for line in lines[:first]), path.name
    blocks: list[list[str]] = []
    for line in lines[first:]:
        if line == SEPARATOR:
            blocks.append([])
        else:
            blocks[-1].append(line)
    requests = []
    for number, block in enumerate(blocks, start=1):
        words = block[0].split()
        if words[0].startswith("#"):
            assert words[0] == f"#{number}", block[0]
            words = words[1:]
        method, target = words[0], words[1]
        assert method in ("GET", "POST") and words[2] == "HTTP/1.1", block[0]
        end = next(i for i, line in enumerate(block) if line.startswith("--- body"))
        headers = []
        for line in block[1:end]:
            name, sep, value = line.partition(": ")
            assert sep and name and " " not in name, f"{path.name} #{number}: {line!r}"
            headers.append((name, value))
        where = f"{path.name}#{number}"
        requests.append(Captured(where, method, target.rsplit("/", 1)[-1], tuple(headers)))
    return requests


SDK = parse_capture(VDXP / "sdk-requests.txt") if VDXP.exists() else []
ONE_CLIENT = parse_capture(VDXP / "sdk-requests-one-client.txt") if VDXP.exists() else []
GATEWAY = parse_capture(VDXP / "gateway-requests.txt") if VDXP.exists() else []
ALL = SDK + ONE_CLIENT + GATEWAY
#: A few requests of each kind: a list call, the sendEdoc with a JSON-array ``to``, the
#: piled-up docId/docid of one client, the gateway's sendEdoc and its filtered list.
SOME = [SDK[0], SDK[2], ONE_CLIENT[1], ONE_CLIENT[2], GATEWAY[3], GATEWAY[7]] if ALL else []


def known(system_id: str) -> str | None:
    """The capture server's systems: one, with the secret the captures were made with."""
    return SECRET if system_id == SYSTEM else None


def anybody(system_id: str) -> str | None:
    """Every system has the captures' secret: an HMAC check alone would pass anything."""
    return SECRET


def fault_of(sent: Sequence[tuple[str, str]], secret_of: vdxp.SecretOf = known) -> Fault:
    with pytest.raises(CallFailed) as exc:
        vdxp.authenticate(sent, secret_of)
    return exc.value.fault


def test_the_captures_are_what_protocol_md_describes() -> None:
    assert [len(SDK), len(ONE_CLIENT), len(GATEWAY)] == [12, 3, 16]
    assert {r.operation for r in ALL} <= {op.value for op in vdxp.Operation}
    assert [r.method for r in ALL if r.method == "GET"] == ["GET"]  # downloadEdoc alone
    for request in ALL:
        assert request.header("XroadVnpt-version") == vdxp.VERSION, request
        assert request.header("User-Agent") == vdxp.USER_AGENT, request


# -- the signature ----------------------------------------------------------------------------


def test_the_test_vector_of_protocol_md() -> None:
    first = SDK[0]
    assert first.operation == "getReceivedEdocList"
    text = first.header(SIGN_HEADER)
    assert vdxp.hmac_hex(SECRET, text.encode("utf-8")) == VECTOR
    assert first.header(HASH_HEADER) == VECTOR


@pytest.mark.parametrize("request_", ALL, ids=str)
def test_every_captured_request_authenticates(request_: Captured) -> None:
    call = vdxp.authenticate(request_.headers, known)
    assert call.system_id == SYSTEM
    assert call.params == tuple((k.removeprefix(PREFIX), v) for k, v in request_.signed)
    assert vdxp.hmac_hex(SECRET, request_.header(SIGN_HEADER).encode()) == request_.header(
        HASH_HEADER
    )


@pytest.mark.parametrize("request_", ALL, ids=str)
def test_sign_writes_what_the_sdk_wrote(request_: Captured) -> None:
    """The client's own order and JSON (no spaces, the ``to`` array's quotes escaped): sign()
    is the SDK, byte for byte, on every captured request."""
    written = vdxp.sign(request_.signed, SECRET)
    assert written[: len(request_.signed)] == request_.signed
    assert written[len(request_.signed) :] == [
        (SIGN_KEYS, request_.header(SIGN_KEYS)),
        (SIGN_HEADER, request_.header(SIGN_HEADER)),
        (HASH_HEADER, request_.header(HASH_HEADER)),
    ]


@pytest.mark.parametrize("request_", SOME, ids=str)
def test_a_signed_header_sent_with_another_value_is_refused(request_: Captured) -> None:
    names = [name for name, _ in request_.signed]
    assert SYSTEM_ID in names and len(names) >= 3
    for name, value in request_.signed:
        changed = request_.replaced(name, value + "x")
        # Every system shares the secret, so the HMAC alone does not catch the change.
        assert fault_of(changed, anybody) is Fault.HEADER_MISMATCH, name
        if name == SYSTEM_ID:  # without it, no system is named
            assert fault_of(request_.replaced(name, None), anybody) is Fault.UNKNOWN_SYSTEM
        else:
            assert fault_of(request_.replaced(name, None)) is Fault.HEADER_MISMATCH, name
            assert fault_of(changed) is Fault.HEADER_MISMATCH, name


def test_case_variant_duplicates_are_distinct_signed_headers() -> None:
    update = ONE_CLIENT[1]
    assert update.operation == "updateStatus"
    assert [k for k, _ in update.signed][1:3] == ["XroadVnpt-docId", "XroadVnpt-docid"]
    assert fault_of(update.replaced("XroadVnpt-docid", "BBB")) is Fault.HEADER_MISMATCH
    assert fault_of(update.replaced("XroadVnpt-docId", "BBB")) is Fault.HEADER_MISMATCH
    # Sent once, under one spelling, it is not the other one the client signed.
    alone = [(k, v) for k, v in update.headers if k != "XroadVnpt-docid"]
    assert fault_of(alone) is Fault.HEADER_MISMATCH


@pytest.mark.parametrize("request_", SOME, ids=str)
def test_a_changed_signature_is_refused(request_: Captured) -> None:
    digest = request_.header(HASH_HEADER)
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    assert fault_of(request_.replaced(HASH_HEADER, flipped)) is Fault.BAD_SIGNATURE
    assert fault_of(request_.replaced(HASH_HEADER, None)) is Fault.BAD_SIGNATURE
    assert fault_of(request_.replaced(HASH_HEADER, "")) is Fault.BAD_SIGNATURE
    text = request_.header(SIGN_HEADER)
    for changed in (
        text.replace(SYSTEM, "00.53.W01"),
        text.replace('":"', '": "', 1),  # the same JSON, other text
        text + " ",
    ):
        assert changed != text
        assert fault_of(request_.replaced(SIGN_HEADER, changed)) is Fault.BAD_SIGNATURE
        assert fault_of(request_.replaced(SIGN_HEADER, changed), anybody) is Fault.BAD_SIGNATURE
    assert fault_of(request_.replaced(SIGN_HEADER, None)) is Fault.BAD_SIGNATURE
    assert fault_of(request_.headers, lambda _: "another-secret") is Fault.BAD_SIGNATURE


@pytest.mark.parametrize("request_", SOME, ids=str)
def test_an_unknown_or_unnamed_system_is_refused(request_: Captured) -> None:
    assert fault_of(request_.headers, lambda _: None) is Fault.UNKNOWN_SYSTEM
    assert fault_of(request_.replaced(SYSTEM_ID, "00.53.W01")) is Fault.UNKNOWN_SYSTEM
    assert fault_of(request_.replaced(SYSTEM_ID, None), anybody) is Fault.UNKNOWN_SYSTEM
    assert fault_of(request_.replaced(SYSTEM_ID, ""), anybody) is Fault.UNKNOWN_SYSTEM
    with pytest.raises(CallFailed, match="00.53.W01"):
        vdxp.authenticate(request_.replaced(SYSTEM_ID, "00.53.W01"), known)


@pytest.mark.parametrize("request_", SOME, ids=str)
def test_a_key_list_that_names_other_headers_is_refused(request_: Captured) -> None:
    keys = request_.header(SIGN_KEYS).split(";")
    for other in (
        keys[:-1],  # one left out
        [*keys, "docId"],  # one more
        [keys[1], keys[0], *keys[2:]],  # another order
        [keys[0].upper(), *keys[1:]],  # another spelling
        [],
    ):
        changed = request_.replaced(SIGN_KEYS, ";".join(other))
        assert fault_of(changed) is Fault.HEADER_MISMATCH, other
    assert fault_of(request_.replaced(SIGN_KEYS, None)) is Fault.HEADER_MISMATCH


@pytest.mark.parametrize("request_", SOME, ids=str)
def test_headers_nobody_signed_are_ignored(request_: Captured) -> None:
    signed = vdxp.authenticate(request_.headers, known)
    added = [
        *request_.headers,
        ("XroadVnpt-extra", "added on the way"),
        ("XroadVnpt-DOCID", "not signed"),
        ("X-Forwarded-For", "10.0.0.1"),
    ]
    changed = request_.replaced("Content-Type", "text/plain")  # the plain one is not signed
    for sent in (added, changed, list(reversed(request_.headers))):
        call = vdxp.authenticate(sent, known)
        assert call == signed
        assert "extra" not in dict(call.params) and "DOCID" not in dict(call.params)


def test_a_hash_header_that_is_not_ascii_is_a_bad_signature() -> None:
    request_ = SDK[0]
    digest = request_.header(HASH_HEADER)
    assert fault_of(request_.replaced(HASH_HEADER, "é" + digest[1:])) is Fault.BAD_SIGNATURE


@pytest.mark.parametrize(
    "text",
    ["[1]", '[["a","b","c"]]', f'[["{SYSTEM_ID}","{SYSTEM}"]]'],
    ids=["int", "triple", "pairs"],
)
def test_a_sign_header_that_is_no_object_is_a_bad_signature(text: str) -> None:
    sent = [
        (SYSTEM_ID, SYSTEM),
        (SIGN_KEYS, "systemid"),
        (SIGN_HEADER, text),
        (HASH_HEADER, vdxp.hmac_hex(SECRET, text.encode())),
    ]
    assert fault_of(sent) is Fault.BAD_SIGNATURE


def test_a_sign_header_of_other_values_than_strings_is_a_bad_signature() -> None:
    for text in (f'{{"{SYSTEM_ID}":1}}', f'{{"{SYSTEM_ID}":null}}', "not json", '"text"'):
        sent = [
            (SYSTEM_ID, SYSTEM),
            (SIGN_KEYS, "systemid"),
            (SIGN_HEADER, text),
            (HASH_HEADER, vdxp.hmac_hex(SECRET, text.encode())),
        ]
        assert fault_of(sent) is Fault.BAD_SIGNATURE, text


def test_the_system_signed_is_the_system_named() -> None:
    """A client of system A that signs headers naming no systemid cannot pass as A."""
    params = [("XroadVnpt-docId", "AAA")]
    sent = [(SYSTEM_ID, SYSTEM), *vdxp.sign(params, SECRET)]
    assert fault_of(sent) is Fault.HEADER_MISMATCH


# -- Call.param -------------------------------------------------------------------------------


def test_param_prefers_the_exact_spelling_then_the_alternatives_then_any_case() -> None:
    call = Call(SYSTEM, (("docid", "lower"), ("DOCID", "upper"), ("docId", "camel")))
    assert call.param("docId") == "camel"
    assert call.param("docid") == "lower"
    assert call.param("DOCID") == "upper"
    assert call.param("DocId") == "lower"  # no exact one: the first of any case
    assert call.param("DocId", "DOCID") == "upper"  # the alternative before any case
    assert call.param("DocId", "nothing", "DOCID", "docid") == "upper"
    assert call.param("docId", "docid") == "camel"  # the exact one first
    assert call.param("status") is None and call.param("status", "docid") == "lower"
    only_lower = Call(SYSTEM, (("docid", "B"),))
    assert only_lower.param("docId") == "B"
    assert Call(SYSTEM).param("docId") is None


def test_param_on_what_the_one_client_piled_up() -> None:
    listing = vdxp.authenticate(ONE_CLIENT[2].headers, known)
    assert listing.param("messagetype") == "status"
    assert [k for k, _ in listing.params].count("docId") == 1
    assert ("docid", "AAA") in listing.params and listing.param("docid") == "AAA"
    gateway = vdxp.authenticate(GATEWAY[7].headers, known)
    assert gateway.param("to") == SYSTEM
    assert vdxp.parse_time(gateway.param("fromDate"), "fromDate") == datetime(2026, 1, 1)
    assert vdxp.parse_time(gateway.param("toDate"), "toDate") == datetime(2026, 12, 31, 23, 59, 59)


# -- sign() round trips ------------------------------------------------------------------------


def test_sign_round_trips_vietnamese_and_a_json_array() -> None:
    to = '["000.00.00.G22","000.00.01.H41"]'
    params = [
        (SYSTEM_ID, SYSTEM),
        ("XroadVnpt-from", "000.00.00.H41"),
        ("XroadVnpt-to", to),
        ("XroadVnpt-description", "Văn bản đã được tiếp nhận — Điện Biên"),
        ("XroadVnpt-timestamp", vdxp.timestamp(datetime(2026, 12, 2, 21, 57, 14, 643_000))),
    ]
    sent = vdxp.sign(params, SECRET)
    assert '"XroadVnpt-to":"[\\"000.00.00.G22\\",\\"000.00.01.H41\\"]"' in dict(sent)[SIGN_HEADER]
    assert "Văn bản" in dict(sent)[SIGN_HEADER]  # as written, not \u-escaped (the SDK's way)
    call = vdxp.authenticate([*sent, ("Content-Type", "application/json")], known)
    assert call.params == tuple((k.removeprefix(PREFIX), v) for k, v in params)
    assert call.param("description") == "Văn bản đã được tiếp nhận — Điện Biên"
    assert vdxp.to_codes(call.param("to")) == ["000.00.00.G22", "000.00.01.H41"]
    assert call.param("timestamp") == "02122026T215714+0643"


NAMES = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=16).filter(
    lambda n: PREFIX + n not in RESERVED | {SYSTEM_ID}
)
VALUES = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n\r"), max_size=30)


@st.composite
def signed_params(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A system id and other parameters (distinct names, case variants allowed), the
    system id anywhere among them."""
    extra = draw(st.lists(st.tuples(NAMES, VALUES), max_size=8, unique_by=lambda p: p[0]))
    params = [(PREFIX + name, value) for name, value in extra]
    system_id = draw(VALUES.filter(bool))
    params.insert(draw(st.integers(0, len(params))), (SYSTEM_ID, system_id))
    return params


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_params(), VALUES, st.data())
def test_sign_and_authenticate_round_trip(
    params: list[tuple[str, str]], secret: str, data: st.DataObject
) -> None:
    sent = data.draw(st.permutations(vdxp.sign(params, secret)))
    system_id = dict(params)[SYSTEM_ID]
    call = vdxp.authenticate(sent, lambda s: secret if s == system_id else None)
    assert call.system_id == system_id
    assert call.params == tuple((k.removeprefix(PREFIX), v) for k, v in params)
    for name, value in params:
        assert call.param(name.removeprefix(PREFIX)) == value


@settings(max_examples=100, deadline=None)
@given(signed_params(), st.data())
def test_any_signed_value_changed_is_refused(
    params: list[tuple[str, str]], data: st.DataObject
) -> None:
    sent = vdxp.sign(params, SECRET)
    index = data.draw(st.integers(0, len(params) - 1))
    name, value = sent[index]
    other = data.draw(VALUES.filter(lambda v: v != value and (name != SYSTEM_ID or bool(v))))
    sent[index] = (name, other)
    assert fault_of(sent, anybody) is Fault.HEADER_MISMATCH


# -- hash-file --------------------------------------------------------------------------------


def test_hash_file_of_the_sdks_sendedoc() -> None:
    send = SDK[2]
    assert send.operation == "sendEdoc"
    body = SDK_SENT_SAMPLE.read_bytes()
    assert vdxp.unpadded_sha256(body) == send.header("XroadVnpt-hash-file")
    assert len(send.header("XroadVnpt-hash-file")) < 64  # a byte below 0x10 lost its zero
    assert vdxp.unpadded_sha256(body + b"\r\n") != send.header("XroadVnpt-hash-file")


@pytest.mark.parametrize("number", [4, 5, 6, 7])
def test_hash_file_of_the_gateways_sendedoc(number: int) -> None:
    send = GATEWAY[number - 1]
    assert send.operation == "sendEdoc"
    body = (VDXP / "gateway-bodies" / f"request-{number}.edxml").read_bytes()
    assert body.endswith(b"\r\n")  # the CRLF the SDK appends
    assert vdxp.unpadded_sha256(body[:-2]) == send.header("XroadVnpt-hash-file")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_hash_file_is_each_byte_in_hex_without_padding(body: bytes) -> None:
    digest = hashlib.sha256(body).digest()
    written = vdxp.unpadded_sha256(body)
    assert written == "".join(hex(b)[2:] for b in digest)
    assert 32 <= len(written) <= 64 and written == written.lower()
    if all(b >= 0x10 for b in digest):
        assert written == hashlib.sha256(body).hexdigest()


def test_hash_file_of_known_digests() -> None:
    # sha256(b"") begins e3 b0 c4 42 98 fc 1c 14: the 0x0? and 0x?0 bytes are where it shows.
    assert vdxp.unpadded_sha256(b"") == hashlib.sha256(b"").hexdigest()
    digest = hashlib.sha256(b"abc").digest()
    assert vdxp.unpadded_sha256(b"abc") == "".join(f"{b:x}" for b in digest)


# -- answers ----------------------------------------------------------------------------------


def test_answers_are_ascii_json_for_vietnamese_text() -> None:
    answer = vdxp.answer_ok(
        "Văn bản không đúng QCVN 102:2016 (đã ghi nhận)",
        DocId="5bebcfeff858e3e0cc154762",
        data=[{"name": "UBND tỉnh Điện Biên", "code": "000.00.00.H10"}],
    )
    encoded = vdxp.encode(answer)
    assert all(byte < 0x80 for byte in encoded)
    assert encoded.startswith(b'{"status":"OK","ErrorCode":"0","ErrorDesc":"V\\u0103n')
    assert json.loads(encoded) == answer
    assert json.loads(encoded.decode("ascii"))["data"][0]["name"] == "UBND tỉnh Điện Biên"
    assert answer["status"] == "OK" and answer["ErrorCode"] == "0"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none(), max_size=6))
def test_any_answer_encodes_as_ascii_and_reads_back(fields: dict[str, object]) -> None:
    answer = {"status": "OK", **fields}
    encoded = vdxp.encode(answer)
    encoded.decode("ascii")
    assert json.loads(encoded) == answer


@pytest.mark.parametrize("fault", list(Fault))
def test_a_refusal_always_carries_an_empty_docid(fault: Fault) -> None:
    words = {"from_": "002.00.20.H13"} if fault is Fault.WRONG_FROM else {}
    failed = CallFailed(fault, "chi tiết", **words)
    body = vdxp.answer_fail(failed)
    assert body["status"] == "FAIL" and body["DocId"] == ""
    assert body["ErrorCode"] == vdxp.ERRORS[fault].code != "0"
    assert str(body["ErrorDesc"]).endswith(": chi tiết") and "problem" not in body
    assert failed.row is vdxp.ERRORS[fault]
    with_problem = vdxp.answer_fail(failed, "schema-violation")
    assert with_problem["problem"] == "schema-violation" and with_problem["DocId"] == ""
    assert json.loads(vdxp.encode(with_problem)) == with_problem


def test_the_one_real_error_text() -> None:
    failed = CallFailed(Fault.WRONG_FROM, from_="002.00.20.H13")
    assert failed.desc == "Don vi gui 002.00.20.H13 khong dung voi ma da dang ky"
    assert CallFailed(Fault.BAD_REQUEST).desc == vdxp.ERRORS[Fault.BAD_REQUEST].desc


def test_every_fault_has_a_row_with_a_code_of_its_own() -> None:
    assert set(vdxp.ERRORS) == set(Fault)
    codes = [row.code for row in vdxp.ERRORS.values()]
    assert len(set(codes)) == len(codes) and "0" not in codes
    assert all(code.isdigit() for code in codes)
    assert all(400 <= row.status < 600 for row in vdxp.ERRORS.values())
    assert all(row.desc and row.desc.isascii() for row in vdxp.ERRORS.values())


def test_every_input_error_is_a_fault_on_this_face() -> None:
    def subclasses(cls: type[errors.AxisError]) -> list[type[errors.AxisError]]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    for cls in subclasses(errors.InputError):
        assert cls.problem in vdxp.FAULT_OF_PROBLEM, cls.__name__
    assert set(vdxp.FAULT_OF_PROBLEM.values()) <= set(Fault)


# -- what the face says of items --------------------------------------------------------------

ITEM_CASES = [
    ("queued", None, ItemState.INITIAL),
    ("queued", "processing", ItemState.PROCESSING),
    ("queued", "inbox", ItemState.PROCESSING),
    ("queued", "fail", ItemState.FAIL),
    ("delivered", None, ItemState.PROCESSING),
    ("delivered", "acceptance", ItemState.PROCESSING),
    ("delivered", "fail", ItemState.FAIL),
    ("acknowledged", None, ItemState.DONE),
    ("acknowledged", "fail", ItemState.DONE),
    ("acknowledged", "done", ItemState.DONE),
    ("failed", None, ItemState.FAIL),
    ("failed", "processing", ItemState.FAIL),
    ("recalled", None, ItemState.RECALLED),
    ("recalled", "fail", ItemState.RECALLED),
    ("recalled", "processing", ItemState.RECALLED),
]


@pytest.mark.parametrize(("state", "mark", "expected"), ITEM_CASES)
def test_item_state(state: str, mark: str | None, expected: ItemState) -> None:
    assert vdxp.item_state(state, mark) is expected


def test_item_state_covers_every_delivery_state_and_mark() -> None:
    assert {s.value for s in DeliveryState} == {s for s, _, _ in ITEM_CASES}
    for state in DeliveryState:
        for mark in [None, *Mark]:
            assert vdxp.item_state(state.value, mark) in vdxp.ITEM_STATES
    assert set(vdxp.ITEM_STATES) == set(ItemState) and set(vdxp.MARKS) == set(Mark)
    assert [m for m, rule in vdxp.MARKS.items() if rule.acknowledges] == [Mark.DONE]


# -- to, times --------------------------------------------------------------------------------


def test_to_codes() -> None:
    assert vdxp.to_codes(SDK[2].header("XroadVnpt-to")) == ["000.00.00.G22", "000.00.01.H41"]
    assert vdxp.to_codes(GATEWAY[3].header("XroadVnpt-to")) == [SYSTEM]  # a plain code
    assert vdxp.to_codes(' [ "000.00.00.G22" ] ') == ["000.00.00.G22"]
    assert vdxp.to_codes("[]") == []
    assert vdxp.to_codes(None) == [] and vdxp.to_codes("") == []
    for bad in ('["000.00.00.G22"', '["000.00.00.G22", 1]', "[null]", '[["a"]]', "[x]"):
        with pytest.raises(CallFailed) as exc:
            vdxp.to_codes(bad)
        assert exc.value.fault is Fault.BAD_REQUEST, bad


def test_parse_time() -> None:
    assert vdxp.parse_time("31/12/2026 23:59:59", "toDate") == datetime(2026, 12, 31, 23, 59, 59)
    assert vdxp.parse_time("01/01/2026 00:00:00", "fromDate") == datetime(2026, 1, 1)
    assert vdxp.parse_time(None, "fromDate") is None and vdxp.parse_time("", "fromDate") is None
    for bad in (
        "2026-12-31 23:59:59",
        "31/12/2026",
        "31/12/2026T23:59:59",
        "32/12/2026 00:00:00",
        "12/31/2026 23:59:59",
        "31/12/2026 24:00:00",
        "hôm nay",
    ):
        with pytest.raises(CallFailed, match="toDate") as exc:
            vdxp.parse_time(bad, "toDate")
        assert exc.value.fault is Fault.BAD_REQUEST, bad


TIMESTAMP = re.compile(r"\d{8}T\d{6}\+\d{4}")


def test_timestamp_is_the_sdks() -> None:
    at = datetime(2026, 12, 2, 21, 57, 14, 643_999)
    assert vdxp.timestamp(at) == "02122026T215714+0643"
    assert vdxp.timestamp(datetime(2026, 1, 3, 4, 5, 6)) == "03012026T040506+0000"
    assert TIMESTAMP.fullmatch(vdxp.timestamp(datetime.now()))
    for request_ in ALL:
        written = request_.header("XroadVnpt-timestamp")
        assert TIMESTAMP.fullmatch(written), request_
        at = datetime.strptime(written[:15], vdxp.TIMESTAMP_FORMAT)
        assert vdxp.timestamp(at.replace(microsecond=int(written[16:]) * 1000)) == written


# -- secrets at rest --------------------------------------------------------------------------


def test_seal_and_unseal() -> None:
    key = os.urandom(32)
    secret = vdxp.new_secret()
    assert re.fullmatch(r"[0-9a-f]{64}", secret) and secret != vdxp.new_secret()
    sealed = vdxp.seal(secret, key, SYSTEM)
    assert secret.encode() not in sealed and sealed != vdxp.seal(secret, key, SYSTEM)
    assert vdxp.unseal(sealed, key, SYSTEM) == secret
    assert vdxp.unseal(vdxp.seal("bí mật", key, SYSTEM), key, SYSTEM) == "bí mật"
    with pytest.raises(ValueError, match=SYSTEM):
        vdxp.unseal(sealed, os.urandom(32), SYSTEM)
    with pytest.raises(ValueError):
        vdxp.unseal(sealed, key, "00.53.W01")
    with pytest.raises(ValueError):
        vdxp.unseal(sealed[:-1], key, SYSTEM)
    with pytest.raises(ValueError):
        vdxp.unseal(b"", key, SYSTEM)
    tampered = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
    with pytest.raises(ValueError):
        vdxp.unseal(tampered, key, SYSTEM)


@settings(max_examples=50, deadline=None)
@given(VALUES, VALUES.filter(bool))
def test_seal_round_trips_any_secret(secret: str, system_id: str) -> None:
    key = os.urandom(32)
    assert vdxp.unseal(vdxp.seal(secret, key, system_id), key, system_id) == secret
