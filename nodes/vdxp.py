"""A client of the national axis's adapter API (VDXP) that behaves on the wire like VNPT's
Java SDK 2.0.1 (``../shared/vdxp/PROTOCOL.md``): what agency software sends to Axis's second
face, for tests, the simulator and anybody checking that face against the field.

Theory of operation. Every call is ``POST {endpoint}/{operation}`` (``downloadEdoc`` a GET)
whose parameters travel as ``XroadVnpt-<name>`` headers, signed with :func:`vdxp.sign`. In
mode ``"sdk"`` (the default) the client keeps the SDK's quirks, as the captures show them:

- the timestamp is fixed when the client object is built and reused on every call;
- the parameters live in one map held by the client object, so they pile up across calls: a
  later call carries every earlier call's keys (``docId`` and ``docid`` side by side when two
  calls spell it differently), each key with the value it was last given;
- the map is a ``java.util.HashMap`` of the bare names, so the signed order is that map's
  iteration order (:func:`java_hashmap_order`), not the order the keys were set. This is
  inferred, not read from the SDK's code, and it reproduces every capture exactly: the three
  calls of ``sdk-requests-one-client.txt`` (where ``servicetype``, set last, comes second),
  each single call of ``sdk-requests.txt``, and the gateway's sixteen (where the map grows
  past twelve keys and Java rehashes it into 32 buckets).

Mode ``"clean"`` sends a fresh map per call (a fresh timestamp, only the call's own keys), as
a well-behaved client would. Either way the answers are read as the SDK reads them: the HTTP
status is ignored and the JSON body decides (:class:`VdxpAnswer`).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict

from axis.core import vdxp
from axis.core.edxml_read import decode_base64
from axis.core.vdxp import PREFIX, USER_AGENT, VERSION, Operation
from axis.core.vdxp import VIETNAM as VIETNAM  # the protocol's zone, for callers of this client
from axis.errors import UnexpectedAnswer, Unreachable

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
#: What the SDK sends with sendEdoc (Java's HttpURLConnection default), and on every other call
#: (Apache HttpClient's): kept so that a server sees the SDK's requests as they come.
_URLCONNECTION_ACCEPT = "text/html, image/gif, image/jpeg, */*; q=0.2"
_APACHE_ACCEPT_ENCODING = "gzip,deflate"

Mode = Literal["sdk", "clean"]
#: How a call spells the document id. The key is the caller's choice in the SDK (each key of
#: its JSON argument becomes a header): getEdoc is called with ``docId``, updateStatus with
#: ``docid`` by Bkav and others (``sdk-requests-one-client.txt``), with ``docId`` elsewhere
#: (``sdk-requests.txt``, the gateway).
DocIdKey = Literal["docId", "docid"]
Date = datetime | str


# -- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VdxpAnswer:
    """One answer of the adapter API: its envelope, the operation's other fields (``DocId``,
    ``data``, ``count``...) and the HTTP status it came with (which the SDK ignores)."""

    status: str
    error_code: str
    error_desc: str
    fields: dict[str, Any]
    http_status: int
    operation: str = ""

    @property
    def ok(self) -> bool:
        """Whether the axis said ``"status": "OK"``."""
        return self.status == "OK"

    def raise_for_fail(self) -> VdxpAnswer:
        """This answer, if it is a success.

        Raises:
            VdxpFailed: the axis answered anything but ``"status": "OK"``.
        """
        if not self.ok:
            raise VdxpFailed(self)
        return self


class VdxpFailed(Exception):
    """The axis refused a call (``"status": "FAIL"``); its answer is :attr:`answer`."""

    def __init__(self, answer: VdxpAnswer) -> None:
        super().__init__(
            f"{answer.operation or 'the call'} failed (HTTP {answer.http_status}, status"
            f" {answer.status}, ErrorCode {answer.error_code}): {answer.error_desc}"
        )
        self.answer = answer


def read_answer(operation: str, http_status: int, body: bytes) -> VdxpAnswer:
    """The answer ``body`` stands for, whatever ``http_status`` (as the SDK reads it).

    Raises:
        UnexpectedAnswer: the body is not a JSON object with a ``status``.
    """
    envelope = _envelope(body)
    if envelope is None:
        raise UnexpectedAnswer(
            f"{operation} answered HTTP {http_status} with a body that is not an answer of the"
            f" adapter API (a JSON object with a status): {_preview(body)}",
            status=http_status,
        )
    rest = {k: v for k, v in envelope.items() if k not in ("status", "ErrorCode", "ErrorDesc")}
    return VdxpAnswer(
        status=_text(envelope.get("status")),
        error_code=_text(envelope.get("ErrorCode")),
        error_desc=_text(envelope.get("ErrorDesc")),
        fields=rest,
        http_status=http_status,
        operation=operation,
    )


def _envelope(body: bytes) -> dict[str, Any] | None:
    """The JSON object ``body`` holds, if it is one with a ``status``; else None."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or "status" not in value:
        return None
    return value


def _text(value: object) -> str:
    # An axis may write ErrorCode as a number; absent or null reads as "" (the SDK's null).
    return "" if value is None else str(value)


def _preview(body: bytes) -> str:
    return repr(body[:200].decode("utf-8", "replace")) if body else "(empty)"


# -- the SDK's header map ---------------------------------------------------------------------


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()`` of ``text`` (over UTF-16 code units), as 32 unsigned
    bits."""
    units = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h


def java_hashmap_order(keys: Sequence[str]) -> list[str]:
    """The order a ``java.util.HashMap`` iterates ``keys``, given in the order they were first
    put (none removed): by bucket (the spread hash masked to the table size), then, within a
    bucket, by insertion (Java's resize keeps each bucket's relative order).

    The table starts at 16 buckets and doubles whenever it holds more than three quarters of
    that. Not modelled: a bucket of eight or more keys, which Java would treeify or answer
    with an early resize (no call of the SDK comes near it).
    """
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key)
        return (h ^ (h >> 16)) & (capacity - 1)

    return [key for _, key in sorted(enumerate(keys), key=lambda p: (bucket(p[1]), p[0]))]


class _Name(str):
    """A header name equal to its case variants. aiohttp merges a request's headers into a
    fresh CIMultiDict and *replaces* a name it has not seen spelled exactly so, which would
    drop ``XroadVnpt-docId`` when ``XroadVnpt-docid`` follows; a name that compares equal to
    the earlier spelling is *added* instead, and both reach the wire."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self.lower())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.lower() == other.lower()

    def __ne__(self, other: object) -> bool:  # str's own would still compare case
        return not self == other


class _Headers(CIMultiDict[str]):
    """Request headers whose case-variant duplicates survive aiohttp (see :class:`_Name`)."""

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(_Name(key), value) for key, value in super().items()]


# -- the client -------------------------------------------------------------------------------


def vietnam_now() -> datetime:
    """Now, in Vietnam time (the SDK's clock is the agency's, in UTC+7)."""
    return datetime.now(VIETNAM)


class VdxpClient:
    """A vendor's SDK client object: one system, one secret, one keep-alive connection pool.
    Use as ``async with VdxpClient(endpoint, system_id, secret) as axis``.

    Calls on one object are not meant to overlap (the SDK's map is shared state): each takes
    its snapshot of the map before it awaits, so overlapping calls stay well signed, but what
    a later call carries depends on which call set its keys last.
    """

    def __init__(
        self,
        endpoint: str,
        system_id: str,
        secret: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        mode: Mode = "sdk",
        timeout_s: float = 60.0,
        max_connections: int = 2,
        clock: Callable[[], datetime] = vietnam_now,
    ) -> None:
        """``endpoint``: the adapter's base URL, e.g. ``http://HOST:8080/XrdAdapter/adapter``.
        ``mode``: ``"sdk"`` keeps the SDK's quirks (module doc), ``"clean"`` a fresh map per
        call. ``clock``: now, in Vietnam time (a fixed one makes the timestamp repeatable).

        Raises:
            ValueError: an unknown ``mode``, or an empty ``system_id``.
        """
        if mode not in ("sdk", "clean"):
            raise ValueError(f"mode must be 'sdk' or 'clean', not {mode!r}")
        if not system_id:
            raise ValueError("a system id is required")
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self.mode: Mode = mode
        self._secret = secret
        self._clock = clock
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # The SDK's map, bare names in the order first put (a Python dict keeps a key's
        # place when its value changes, as Java's HashMap keeps its entry). The timestamp is
        # put here, once: it goes before Content-Type and every call's keys, which is what
        # the captures' shared bucket (timestamp, Content-Type, status) shows.
        self._held: dict[str, str] = self._fresh()

    def _fresh(self) -> dict[str, str]:
        return {"systemid": self.system_id, "timestamp": vdxp.timestamp(self._clock())}

    @property
    def held(self) -> tuple[tuple[str, str], ...]:
        """The parameters the client holds (mode ``"sdk"``: what the next call carries
        besides its own), in the order it signs them."""
        return tuple((key, self._held[key]) for key in java_hashmap_order(list(self._held)))

    async def __aenter__(self) -> VdxpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the connections (the client may be used again: a new pool is opened)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections),
                timeout=self._timeout,
            )
        return self._session

    # -- one call -----------------------------------------------------------------------------

    def signed_headers(
        self, keys: Sequence[tuple[str, str]], content_type: str = JSON
    ) -> list[tuple[str, str]]:
        """The ``XroadVnpt-*`` headers of a call whose own parameters are ``keys`` (bare
        names), the three signature headers last; in mode ``"sdk"`` the keys are kept for
        later calls."""
        held = self._held if self.mode == "sdk" else self._fresh()
        # Content-Type before the call's keys (the shared bucket again); the call's keys in
        # the order the SDK's JSON argument, itself a HashMap (org.json), hands them over.
        # That order only decides anything between keys of one bucket: a guess no capture
        # contradicts, and none tests.
        held["Content-Type"] = content_type
        own = dict(keys)
        for key in java_hashmap_order(list(own)):
            held[key] = own[key]
        order = java_hashmap_order(list(held))
        return vdxp.sign([(PREFIX + key, held[key]) for key in order], self._secret)

    def _wire(self, signed: Sequence[tuple[str, str]], content_type: str) -> _Headers:
        """Every header of a request, in the SDK's order (Host, Content-Length and Expect
        aiohttp places itself)."""
        headers = _Headers()
        apache = content_type != OCTET_STREAM  # sendEdoc goes out through HttpURLConnection
        if not apache:
            headers.add("Content-Type", content_type)
        for name, value in signed:
            if apache and name == PREFIX + "Content-Type":
                headers.add("Content-Type", content_type)  # Apache's: just before its twin
            headers.add(name, value)
        headers.add("User-Agent", USER_AGENT)
        headers.add(PREFIX + "version", VERSION)
        if apache:
            headers.add("Connection", "Keep-Alive")
            headers.add("Accept-Encoding", _APACHE_ACCEPT_ENCODING)
        else:
            headers.add("Cache-Control", "no-cache")
            headers.add("Pragma", "no-cache")
            headers.add("Accept", _URLCONNECTION_ACCEPT)
            headers.add("Connection", "keep-alive")
        return headers

    async def _call(
        self,
        operation: Operation,
        keys: Sequence[tuple[str, str]] = (),
        *,
        body: bytes | None = None,
        content_type: str = JSON,
        expect: bool = False,
        method: str = "POST",
    ) -> tuple[int, bytes]:
        """Send one call; its HTTP status and body.

        Raises:
            Unreachable: no answer came (refused, reset, timed out, cut short).
        """
        headers = self._wire(self.signed_headers(keys, content_type), content_type)
        # aiohttp would add its own Accept (Apache sends none) or Accept-Encoding
        # (HttpURLConnection sends none).
        skip = ("Accept",) if content_type != OCTET_STREAM else ("Accept-Encoding",)
        url = f"{self.endpoint}/{operation}"
        # With ``expect``, aiohttp holds the body until the server's 100 Continue, and a
        # server that never sends one makes the call wait for its timeout; Apache HttpClient
        # gives up waiting after 3 s and sends the body anyway. aiohttp's servers (Axis's
        # face among them) and the usual proxies do answer 100.
        try:
            async with self._http().request(
                method, url, data=body, headers=headers, expect100=expect, skip_auto_headers=skip
            ) as answer:
                return answer.status, await answer.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(f"cannot reach the axis adapter at {url}: {exc!r}") from exc

    async def _answer(
        self,
        operation: Operation,
        keys: Sequence[tuple[str, str]] = (),
        *,
        body: bytes | None = None,
        content_type: str = JSON,
        expect: bool = False,
    ) -> VdxpAnswer:
        """Send one POST call and read its answer.

        Raises:
            Unreachable, UnexpectedAnswer (:func:`read_answer`).
        """
        status, answer = await self._call(
            operation, keys, body=body, content_type=content_type, expect=expect
        )
        return read_answer(operation, status, answer)

    # -- the operations -----------------------------------------------------------------------

    async def send_edoc(
        self,
        edxml: bytes,
        from_: str,
        to: Sequence[str] | None = None,
        messagetype: str = "edoc",
        servicetype: str = "eDoc",
    ) -> VdxpAnswer:
        """Send an edXML package (``DocId`` in the answer's fields). ``to``: the recipients
        as a JSON array; None writes no ``to`` (recipients come from the edXML ``To``; in
        mode ``"sdk"`` an earlier call's ``to`` is then still carried, as the SDK does).

        Raises:
            Unreachable, UnexpectedAnswer.
        """
        keys = [
            ("servicetype", servicetype),
            ("messagetype", messagetype),
            ("hash-file", vdxp.unpadded_sha256(edxml)),
            ("from", from_),
        ]
        if to is not None:
            keys.append(("to", json.dumps(list(to), separators=(",", ":"))))
        # The SDK writes the file and then a line end: no multipart framing.
        return await self._answer(
            Operation.SEND_EDOC, keys, body=edxml + b"\r\n", content_type=OCTET_STREAM
        )

    async def get_received_edoc_list(
        self,
        messagetype: str = "edoc",
        from_date: Date | None = None,
        to_date: Date | None = None,
        status: str | None = None,
        page_size: int | None = None,
        page_index: int | None = None,
        to: str | None = None,
        servicetype: str = "eDoc",
    ) -> VdxpAnswer:
        """What waits for the system's agencies (``data`` in the answer's fields). Dates are
        Vietnam time (an aware datetime is converted; a string is sent as it is).

        Raises:
            Unreachable, UnexpectedAnswer.
        """
        keys = [("servicetype", servicetype), ("messagetype", messagetype)]
        optional = {
            "to": to,
            "fromDate": _date(from_date),
            "toDate": _date(to_date),
            "status": status,
            "pageSize": None if page_size is None else str(page_size),
            "pageIndex": None if page_index is None else str(page_index),
        }
        keys += [(k, v) for k, v in optional.items() if v is not None]
        return await self._answer(Operation.GET_RECEIVED_EDOC_LIST, keys)

    async def get_edoc(self, doc_id: str, file_path: str = "store") -> bytes:
        """The edXML of a received package (the answer's base64 ``data``, decoded).
        ``file_path`` is the client's own folder (the SDK sends it; the axis ignores it).

        Raises:
            VdxpFailed: the axis refused. Unreachable.
            UnexpectedAnswer: no answer of the API, or no base64 ``data`` in it.
        """
        keys = [("docId", doc_id), ("filePath", file_path)]
        answer = await self._answer(Operation.GET_EDOC, keys, body=b"{}", expect=True)
        data = answer.raise_for_fail().fields.get("data")
        try:
            if not isinstance(data, str):
                raise ValueError(f"data is {type(data).__name__}, not a string")
            return decode_base64(data)
        except ValueError as exc:  # binascii.Error is one
            raise UnexpectedAnswer(
                f"getEdoc answered OK without the package in base64: {exc}",
                status=answer.http_status,
            ) from exc

    async def download_edoc(self, doc_id: str, file_path: str = "store") -> bytes:
        """The raw edXML of a received package (a GET; the SDK sends ``filePath`` here too).

        Raises:
            VdxpFailed: the axis answered a FAIL envelope. Unreachable.
            UnexpectedAnswer: an OK envelope instead of the file, or a non-2xx answer that is
                no envelope (an error page is not the document).
        """
        keys = [("docId", doc_id), ("filePath", file_path)]
        status, body = await self._call(Operation.DOWNLOAD_EDOC, keys, method="GET")
        if _envelope(body) is not None:
            answer = read_answer(Operation.DOWNLOAD_EDOC, status, body).raise_for_fail()
            raise UnexpectedAnswer(
                f"downloadEdoc answered an envelope, not the file: {_preview(body)}",
                status=answer.http_status,
            )
        if not 200 <= status < 300:
            raise UnexpectedAnswer(
                f"downloadEdoc answered HTTP {status}: {_preview(body)}", status=status
            )
        return body

    async def update_status(
        self,
        doc_id: str,
        status: str,
        description: str | None = None,
        *,
        doc_id_key: DocIdKey = "docid",
    ) -> VdxpAnswer:
        """Mark a fetched package (``done`` acknowledges it; ``processing``, ``fail``...).
        ``description`` is the .NET SDK's extra; ``doc_id_key`` how the caller spells the
        id (:data:`DocIdKey`).

        Raises:
            Unreachable, UnexpectedAnswer.
        """
        keys = [(doc_id_key, doc_id), ("status", status)]
        if description is not None:
            keys.append(("description", description))
        return await self._answer(Operation.UPDATE_STATUS, keys, body=b"{}", expect=True)

    async def get_sent_edoc_list(
        self, doc_id: str, messagetype: str = "edoc", servicetype: str = "eDoc"
    ) -> VdxpAnswer:
        """Where a sent package stands, one entry per recipient (``data``).

        Raises:
            Unreachable, UnexpectedAnswer.
        """
        keys = [("servicetype", servicetype), ("messagetype", messagetype), ("docId", doc_id)]
        return await self._answer(Operation.GET_SENT_EDOC_LIST, keys)

    async def count_receive_edoc(self) -> VdxpAnswer:
        """How many edocs wait (``count``). Raises: Unreachable, UnexpectedAnswer."""
        return await self._answer(Operation.COUNT_RECEIVE_EDOC, body=b"{}", expect=True)

    async def count_receive_status(self) -> VdxpAnswer:
        """How many status packages wait (``count``). Raises: Unreachable, UnexpectedAnswer."""
        return await self._answer(Operation.COUNT_RECEIVE_STATUS, body=b"{}", expect=True)

    async def get_agencies_list(self) -> VdxpAnswer:
        """The axis's agencies (``data``). Raises: Unreachable, UnexpectedAnswer."""
        return await self._answer(Operation.GET_AGENCIES_LIST)

    async def get_agencies_list_qd20(self, level: int | str) -> VdxpAnswer:
        """The agencies of one QĐ 20 level (``data``). Raises: Unreachable, UnexpectedAnswer."""
        keys = [("level", str(level))]
        return await self._answer(Operation.GET_AGENCIES_LIST_QD20, keys)

    async def get_synchronize_unit(self) -> VdxpAnswer:
        """The units to synchronise (``data``). Raises: Unreachable, UnexpectedAnswer."""
        return await self._answer(Operation.GET_SYNCHRONIZE_UNIT)

    async def register_agency(
        self, code: str, name: str, pcode: str, mail: str = "", mobile: str = "", fax: str = ""
    ) -> VdxpAnswer:
        """Register an agency under ``pcode`` (the system or a parent agency).

        Raises:
            Unreachable, UnexpectedAnswer.
        """
        # The SDK's own field order and compact JSON, Vietnamese written as UTF-8, not \\u.
        agency = {
            "id": "",
            "pcode": pcode,
            "code": code,
            "name": name,
            "mail": mail,
            "mobile": mobile,
            "fax": fax,
        }
        body = json.dumps(agency, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return await self._answer(Operation.REGISTER_AGENCY, body=body, expect=True)

    async def delete_agency(self, code: str) -> VdxpAnswer:
        """Remove an agency of the system. Raises: Unreachable, UnexpectedAnswer."""
        keys = [("AgencyCode", code)]
        return await self._answer(Operation.DELETE_AGENCY, keys, body=b"{}", expect=True)


def _date(value: Date | None) -> str | None:
    """A list filter's date as the SDK writes it (``dd/MM/yyyy HH:mm:ss``, Vietnam time)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(VIETNAM)
    return value.strftime(vdxp.TIME_FORMAT)
