"""The national axis's own service API (VDXP), as VNPT's SDK speaks it: the envelope, the
signature, and the tables of what this face answers. Pure: headers in, verdicts out.

Theory of operation. An SDK call is ``POST {prefix}/{operation}`` whose parameters are HTTP
headers ``XroadVnpt-<name>`` (``../shared/vdxp/PROTOCOL.md``). The client signs them:
``XroadVnpt-sign-header`` is a JSON object of every ``XroadVnpt-*`` header it holds, in its
own order; ``XroadVnpt-sign-header-key`` lists their names without the prefix, joined by
``;``; ``XroadVnpt-hash-header`` is the lowercase hex HMAC-SHA256 of the sign-header's exact
text under the system's secret (its UTF-8 bytes, not decoded). :func:`authenticate` checks,
in order: the system is named and known, the HMAC over the literal text, that the key list
and the signed object name the same headers, and that every header they name was sent with
the value signed. It then hands the operation the *signed* values (:class:`Call`), never the
raw headers: a header added on the way is ignored, one changed is refused.

The SDK's quirks a server must take are handled here once: a timestamp fixed when the client
object was built (no freshness check is possible, and none is made), headers piling up across
calls with case-variant duplicates (``docId`` and ``docid``: :meth:`Call.param` prefers the
spelling each operation's client writes), the unpadded hex of ``hash-file``.

What nobody outside knows, Axis chooses here, in one table each: the error codes
(:data:`ERRORS`), the transport marks of ``updateStatus`` (:data:`MARKS`), the states of a
received or sent item (:data:`ITEM_STATES`), the time format (:data:`TIME_FORMAT`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "XroadVnpt-"
SIGN_HEADER = PREFIX + "sign-header"
SIGN_KEYS = PREFIX + "sign-header-key"
HASH_HEADER = PREFIX + "hash-header"
SYSTEM_ID = PREFIX + "systemid"
VERSION = "3.0.201608"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
#: The zone of every time this face reads and writes: Vietnam's (UTC+7, no summer time).
VIETNAM = timezone(timedelta(hours=7), "ICT")
#: Dates in answers and list filters: ``dd/MM/yyyy HH:mm:ss``, Vietnam time (the .NET SDK's
#: comment gives this form for fromDate/toDate; the answers' own form is not published).
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"
#: The SDK's timestamp: ``ddMMyyyy'T'HHmmss+SSSS`` (the four digits are milliseconds).
TIMESTAMP_FORMAT = "%d%m%YT%H%M%S"
SYSTEM_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Operation(StrEnum):
    """The adapter's operations (PROTOCOL.md's table)."""

    SEND_EDOC = "sendEdoc"
    GET_RECEIVED_EDOC_LIST = "getReceivedEdocList"
    GET_EDOC = "getEdoc"
    DOWNLOAD_EDOC = "downloadEdoc"
    UPDATE_STATUS = "updateStatus"
    GET_SENT_EDOC_LIST = "getSentEdocList"
    COUNT_RECEIVE_EDOC = "countReceiveEdoc"
    COUNT_RECEIVE_STATUS = "countReceiveStatus"
    GET_AGENCIES_LIST = "getAgenciesList"
    GET_AGENCIES_LIST_QD20 = "getAgenciesListQD20"
    GET_SYNCHRONIZE_UNIT = "getSynchronizeUnit"
    REGISTER_AGENCY = "registerAgency"
    DELETE_AGENCY = "deleteAgency"


# -- errors -----------------------------------------------------------------------------------


class Fault(StrEnum):
    """Why a call fails, each with its ErrorCode, HTTP status and ErrorDesc (:data:`ERRORS`)."""

    UNKNOWN_SYSTEM = "unknown-system"
    BAD_SIGNATURE = "bad-signature"
    HEADER_MISMATCH = "header-mismatch"
    WRONG_FROM = "wrong-from"
    NOT_OF_SYSTEM = "not-of-system"
    BAD_REQUEST = "bad-request"
    REFUSED_PACKAGE = "refused-package"
    UNKNOWN_RECIPIENT = "unknown-recipient"
    UNKNOWN_DOCUMENT = "unknown-document"
    NOT_ALLOWED = "not-allowed"
    DUPLICATE = "duplicate-conflict"
    NONCONFORMING = "nonconforming"
    TOO_LARGE = "too-large"
    RATE_LIMITED = "rate-limited"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ErrorRow:
    """One row of :data:`ERRORS`: the SDK reads ``code`` and ``desc``; operators and curl
    read the HTTP status."""

    code: str
    status: int
    desc: str  # in the real axis's style: Vietnamese without diacritics, then the detail


#: Every failure this face answers. ErrorCode "0" is success. The real axis's codes are not
#: published; these are Axis's, stable from this version on.
ERRORS: Mapping[Fault, ErrorRow] = MappingProxyType(
    {
        Fault.UNKNOWN_SYSTEM: ErrorRow("101", 401, "He thong khong ton tai hoac da bi thu hoi"),
        Fault.BAD_SIGNATURE: ErrorRow("102", 401, "Chu ky header khong hop le"),
        Fault.HEADER_MISMATCH: ErrorRow("103", 401, "Header khong dung voi header da ky"),
        Fault.WRONG_FROM: ErrorRow("104", 403, "Don vi gui {from_} khong dung voi ma da dang ky"),
        Fault.NOT_OF_SYSTEM: ErrorRow("105", 403, "Don vi khong thuoc he thong"),
        Fault.BAD_REQUEST: ErrorRow("106", 400, "Yeu cau khong hop le"),
        Fault.REFUSED_PACKAGE: ErrorRow("107", 422, "Goi tin edXML khong hop le"),
        Fault.UNKNOWN_RECIPIENT: ErrorRow("108", 422, "Don vi nhan khong hop le"),
        Fault.UNKNOWN_DOCUMENT: ErrorRow("109", 404, "Khong tim thay van ban"),
        Fault.NOT_ALLOWED: ErrorRow("110", 403, "Khong co quyen"),
        Fault.DUPLICATE: ErrorRow("111", 409, "Van ban da gui voi noi dung khac"),
        Fault.NONCONFORMING: ErrorRow("112", 422, "Goi tin khong dung QCVN 102:2016"),
        Fault.TOO_LARGE: ErrorRow("113", 413, "Goi tin qua lon"),
        Fault.RATE_LIMITED: ErrorRow("114", 429, "Vuot qua so yeu cau cho phep"),
        Fault.UNAVAILABLE: ErrorRow("500", 503, "He thong tam thoi khong phuc vu"),
    }
)

#: The native problem names (axis.errors) and the fault each is on this face.
FAULT_OF_PROBLEM: Mapping[str, Fault] = MappingProxyType(
    {
        "malformed-xml": Fault.REFUSED_PACKAGE,
        "schema-violation": Fault.REFUSED_PACKAGE,
        "invalid-signature": Fault.REFUSED_PACKAGE,
        "untrusted-certificate": Fault.REFUSED_PACKAGE,
        "sender-mismatch": Fault.NOT_OF_SYSTEM,
        "unknown-recipient": Fault.UNKNOWN_RECIPIENT,
        "unknown-document": Fault.UNKNOWN_DOCUMENT,
        "duplicate-conflict": Fault.DUPLICATE,
        "not-allowed": Fault.NOT_ALLOWED,
        "too-large": Fault.TOO_LARGE,
        "unsupported-media-type": Fault.BAD_REQUEST,
        "rate-limited": Fault.RATE_LIMITED,
        "unavailable": Fault.UNAVAILABLE,
    }
)


class CallFailed(Exception):
    """A call this face answers with ``status: FAIL``: its fault and the detail."""

    def __init__(self, fault: Fault, detail: str = "", **words: str) -> None:
        row = ERRORS[fault]
        desc = row.desc.format(**words) if words else row.desc
        super().__init__(f"{desc}: {detail}" if detail else desc)
        self.fault = fault
        self.desc = str(self)

    @property
    def row(self) -> ErrorRow:
        return ERRORS[self.fault]


def answer_ok(desc: str = "", **fields: object) -> dict[str, object]:
    """A success: the envelope and the operation's fields."""
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": desc, **fields}


def answer_fail(failed: CallFailed, problem: str | None = None) -> dict[str, object]:
    """A refusal the SDK can read: ``DocId`` is always there (SDK 2.0.1 reads the four fields
    together and, without it, shows the user "VXP Server error: null")."""
    body: dict[str, object] = {
        "status": "FAIL",
        "ErrorCode": failed.row.code,
        "ErrorDesc": failed.desc,
        "DocId": "",
    }
    if problem:
        body["problem"] = problem  # the native problem name, for operators
    return body


def encode(answer: Mapping[str, object]) -> bytes:
    """An answer as the SDK reads it: JSON, ASCII only (it reads sendEdoc's as US-ASCII)."""
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# -- the signature ----------------------------------------------------------------------------


def hmac_hex(secret: str, message: bytes) -> str:
    """The SDK's ``hash-header``: lowercase hex HMAC-SHA256, key = the secret's UTF-8 bytes."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def unpadded_sha256(body: bytes) -> str:
    """The SDK's ``hash-file``: each byte of the SHA-256 in hex without zero-padding (Java's
    ``Integer.toHexString``), so it may be shorter than 64 characters."""
    return unpadded_hex(hashlib.sha256(body).digest())


def unpadded_hex(digest: bytes) -> str:
    """A digest as :func:`unpadded_sha256` writes it."""
    return "".join(format(b, "x") for b in digest)


def sign(params: Sequence[tuple[str, str]], secret: str) -> list[tuple[str, str]]:
    """The headers a client sends for ``params`` (``XroadVnpt-`` names and values, in the
    client's order), the three signature headers last."""
    signed = json.dumps(dict(params), ensure_ascii=False, separators=(",", ":"))
    names = ";".join(name.removeprefix(PREFIX) for name, _ in params)
    return [
        *params,
        (SIGN_KEYS, names),
        (SIGN_HEADER, signed),
        (HASH_HEADER, hmac_hex(secret, signed.encode("utf-8"))),
    ]


@dataclass(frozen=True)
class Call:
    """An authenticated call: the system and the parameters it signed (prefix removed, in
    the client's order, duplicates kept)."""

    system_id: str
    params: tuple[tuple[str, str], ...] = field(default=())

    def param(self, name: str, *spellings: str) -> str | None:
        """The signed value of ``name``: that exact spelling, else the first of
        ``spellings``, else any case-variant of it; None if it was not signed."""
        for wanted in (name, *spellings):
            for key, value in self.params:
                if key == wanted:
                    return value
        lowered = name.lower()
        return next((v for k, v in self.params if k.lower() == lowered), None)


#: Given a system id, its secret, or None if no such active system.
SecretOf = Callable[[str], str | None]


def authenticate(sent: Sequence[tuple[str, str]], secret_of: SecretOf) -> Call:
    """Check a call's signature (see the module doc); ``sent`` is every header as received,
    names as written.

    Raises:
        CallFailed: UNKNOWN_SYSTEM, BAD_SIGNATURE or HEADER_MISMATCH.
    """
    system_id = _sent(sent, SYSTEM_ID)
    if not system_id:
        raise CallFailed(Fault.UNKNOWN_SYSTEM, f"no {SYSTEM_ID} header")
    secret = secret_of(system_id)
    if secret is None:
        raise CallFailed(Fault.UNKNOWN_SYSTEM, system_id)
    text, digest = _sent(sent, SIGN_HEADER), _sent(sent, HASH_HEADER)
    if text is None or not digest:
        raise CallFailed(Fault.BAD_SIGNATURE, f"{SIGN_HEADER} and {HASH_HEADER} are required")
    expected = hmac_hex(secret, text.encode("utf-8", "surrogateescape"))
    given = digest.strip().lower().encode("utf-8", "surrogateescape")  # bytes: any text compares
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise CallFailed(Fault.BAD_SIGNATURE, f"{HASH_HEADER} does not match")
    try:
        parsed = json.loads(text, object_pairs_hook=_Pairs)
    except ValueError as exc:
        raise CallFailed(Fault.BAD_SIGNATURE, f"{SIGN_HEADER} is not JSON") from exc
    if not isinstance(parsed, _Pairs) or not all(isinstance(v, str) for _, v in parsed):
        raise CallFailed(Fault.BAD_SIGNATURE, f"{SIGN_HEADER} is not an object of strings")
    pairs: list[tuple[str, str]] = list(parsed)
    keys = [k for k in (_sent(sent, SIGN_KEYS) or "").split(";") if k]
    if [PREFIX + k for k in keys] != [k for k, _ in pairs]:
        raise CallFailed(Fault.HEADER_MISMATCH, f"{SIGN_KEYS} and {SIGN_HEADER} name other headers")
    for name, value in pairs:
        if _sent(sent, name, exact=True) != value:
            raise CallFailed(Fault.HEADER_MISMATCH, f"{name} was not sent as signed")
    if dict(pairs).get(SYSTEM_ID) != system_id:
        raise CallFailed(Fault.HEADER_MISMATCH, f"{SYSTEM_ID} is not the one signed")
    return Call(system_id, tuple((k.removeprefix(PREFIX), v) for k, v in pairs))


class _Pairs(list[tuple[str, str]]):
    """A JSON object's members in order, duplicates kept (an array never becomes one)."""


def _sent(sent: Sequence[tuple[str, str]], name: str, exact: bool = False) -> str | None:
    """The value of header ``name`` as sent: that exact spelling first (case-variant
    duplicates are distinct SDK parameters), else, unless ``exact``, any spelling."""
    for key, value in sent:
        if key == name:
            return value
    if exact:
        return None
    lowered = name.lower()
    return next((v for k, v in sent if k.lower() == lowered), None)


def timestamp(at: datetime) -> str:
    """The SDK's timestamp for ``at``: ``ddMMyyyy'T'HHmmss+SSSS``."""
    return f"{at:{TIMESTAMP_FORMAT}}+{at.microsecond // 1000:04d}"


def parse_time(text: str | None, name: str) -> datetime | None:
    """A list filter's date (``dd/MM/yyyy HH:mm:ss``), naive Vietnam time; None if absent.

    Raises CallFailed(BAD_REQUEST) naming the parameter."""
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT)
    except ValueError as exc:
        raise CallFailed(Fault.BAD_REQUEST, f"{name} {text!r} is not dd/MM/yyyy HH:mm:ss") from exc


def to_codes(value: str | None) -> list[str]:
    """``XroadVnpt-to``: a JSON array of codes (the SDK), or one plain code (a gateway's
    leftover); empty if absent."""
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            codes = json.loads(text)
        except ValueError as exc:
            raise CallFailed(Fault.BAD_REQUEST, f"to {value!r} is not a JSON array") from exc
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise CallFailed(Fault.BAD_REQUEST, f"to {value!r} is not an array of codes")
        return codes
    return [text]


# -- what the face records and answers --------------------------------------------------------


class Mark(StrEnum):
    """What ``updateStatus`` says of one fetched package. Transport marks: none of them is a
    business status (01–06, 13, 15, 16 travel as status packages, sent with sendEdoc)."""

    DONE = "done"
    PROCESSING = "processing"
    FAIL = "fail"
    INBOX = "inbox"
    REJECTION = "rejection"
    ACCEPTANCE = "acceptance"
    ASSIGNMENT = "assignment"
    CANCELLATION = "cancellation"


@dataclass(frozen=True)
class MarkRule:
    """What a mark does: whether it acknowledges the delivery (it leaves the received
    list), and how it reads in Vietnamese (no diacritics, as the axis writes)."""

    acknowledges: bool
    desc: str


#: Every mark this face takes. ``done`` is the acknowledgement. The gateway's other marks
#: (named after status codes 01, 02, 03, 04, 13) are recorded on the delivery, shown to the
#: sender in getSentEdocList and on the native face (track), and move nothing: the package
#: stays on the received list until ``done``, and no status package is made on anybody's
#: behalf (a business status is signed by who sends it).
MARKS: Mapping[Mark, MarkRule] = MappingProxyType(
    {
        Mark.DONE: MarkRule(True, "Da nhan"),
        Mark.PROCESSING: MarkRule(False, "Dang xu ly"),
        Mark.FAIL: MarkRule(False, "Loi xu ly"),
        Mark.INBOX: MarkRule(False, "Da den (01)"),
        Mark.REJECTION: MarkRule(False, "Tu choi (02)"),
        Mark.ACCEPTANCE: MarkRule(False, "Tiep nhan (03)"),
        Mark.ASSIGNMENT: MarkRule(False, "Phan cong (04)"),
        Mark.CANCELLATION: MarkRule(False, "Thu hoi (13)"),
    }
)


class ItemState(StrEnum):
    """The ``status`` of a received item, and ``receiveStatus`` of a sent one."""

    INITIAL = "initial"  # waiting, never fetched
    PROCESSING = "processing"  # fetched (or marked processing)
    DONE = "done"  # acknowledged (done, or status 01 on the native face)
    FAIL = "fail"  # marked fail, or a push that gave up
    RECALLED = "recalled"  # taken back by its sender before it was fetched


#: Each item state's description, as the answers' ``*_desc`` fields give it.
ITEM_STATES: Mapping[ItemState, str] = MappingProxyType(
    {
        ItemState.INITIAL: "Chua nhan",
        ItemState.PROCESSING: "Dang xu ly",
        ItemState.DONE: "Da nhan",
        ItemState.FAIL: "Loi",
        ItemState.RECALLED: "Da thu hoi",
    }
)
#: States a ``status`` filter of getReceivedEdocList may ask for. Any other value (``done``
#: and the marks above) is what an SDK client object keeps from its last updateStatus: it
#: is ignored, or every client that acknowledged once would list nothing new again.
LIST_FILTERS = frozenset({ItemState.INITIAL, ItemState.PROCESSING, ItemState.FAIL})


def item_state(delivery_state: str, mark: str | None) -> ItemState:
    """A delivery's state (axis.core.lifecycle's names) and its last mark, as this face
    says them."""
    if delivery_state == "acknowledged":
        return ItemState.DONE
    if delivery_state == "recalled":
        return ItemState.RECALLED
    if delivery_state == "failed" or mark == Mark.FAIL:
        return ItemState.FAIL
    if delivery_state == "delivered" or mark is not None:
        return ItemState.PROCESSING
    return ItemState.INITIAL


# -- secrets at rest --------------------------------------------------------------------------


def new_secret() -> str:
    """A system's secret: 32 random bytes as 64 hex digits (the SDK uses it as text)."""
    return os.urandom(32).hex()


def seal(secret: str, key: bytes, system_id: str) -> bytes:
    """The secret as the database keeps it: AES-256-GCM under the data folder's key, bound
    to its system. The HMAC needs the secret itself, so it cannot be hashed; a reader of the
    database alone cannot use it."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode("utf-8"), system_id.encode())


def unseal(sealed: bytes, key: bytes, system_id: str) -> str:
    """The secret :func:`seal` kept. Raises ValueError if the key or system is not the one
    it was sealed with."""
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], system_id.encode()).decode("utf-8")
    except (InvalidTag, ValueError) as exc:
        raise ValueError(f"the secret of {system_id} does not open with this key") from exc
