"""The national axis's face (VDXP) over the same :class:`~axis.usecases.hub.Hub`: what each
operation of VNPT's SDK does, in the hub's terms.

Theory of operation. A call is authenticated by its system's HMAC (:func:`axis.core.vdxp.
authenticate`); from then on the system speaks for its agencies (``agencies.system_id``). A
package it sends is read by :func:`axis.core.intake.read_field_package` (a real signature is
verified as on the node API; none, or a deviation from QCVN 102:2016, is taken and recorded,
unless ``[vdxp] strict``/``require_signature``) and then admitted by
:meth:`Hub.admit`, the one path every face takes, so no rule of SPEC §5 is written twice.
What waits for the system is what waits for its agencies; ``updateStatus done`` is their
acknowledgement (:data:`axis.core.vdxp.MARKS` for the other marks). Answers are plain
dictionaries in the SDK's shapes; the web layer only encodes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybase64

from axis.core import conformance, formats, intake, pki, vdxp
from axis.core.formats import ORGAN_ID_2016_RE, ORGAN_ID_QD20_RE, PackageKind, is_organ_id
from axis.core.stats import Metric
from axis.core.vdxp import VIETNAM, Call, CallFailed, Fault, ItemState, Mark, Operation
from axis.core.xmlsafe import load_xml
from axis.errors import AxisError, DuplicateConflict, Nonconforming
from axis.host.config import VdxpSettings
from axis.store.base import Agency, ItemFilter, ItemQuery, System
from axis.usecases.hub import INLINE_VERIFY_BYTES, Hub

SERVICE_TYPE = "eDoc"
MAX_PAGE = 1000  # the largest page of a received list (the SDK's example asks for all)


#: How a call's body is read, once its caller is authenticated (within the hub's limits).
BodySource = Callable[[], Awaitable[bytes]]
T = TypeVar("T")
log = logging.getLogger("axis.national")


@dataclass(frozen=True)
class Answer:
    """What a call answers: the SDK's JSON (``body``) or, for downloadEdoc, the raw bytes;
    the HTTP status operators and curl read (the SDK ignores it)."""

    body: dict[str, Any] | bytes
    status: int = 200
    deviations: tuple[tuple[str, str], ...] = ()  # (system, rule) of a package taken


class NationalFace:
    """The national axis's operations for one hub."""

    def __init__(self, hub: Hub, settings: VdxpSettings, systems_key: bytes) -> None:
        self.hub = hub
        self.store = hub.store
        self.settings = settings
        self._key = systems_key
        # Unsealed secrets by (system, sealed bytes): a new secret seals differently, so a
        # changed or revoked system is never answered from a stale entry.
        self._secrets: dict[tuple[str, bytes], str] = {}

    # -- the call -------------------------------------------------------------------------

    async def call(
        self, operation: str, sent: Sequence[tuple[str, str]], body: BodySource
    ) -> Answer:
        """Authenticate from the headers alone, then read the body (``body``: how, within
        the hub's limits) and run the call; every refusal is an answer with ``status: FAIL``,
        and nothing is read from a caller that is not authenticated."""
        try:
            call = await self._authenticate(sent)
            op = _operation(operation)
            if self.hub.limiter.take(f"system {call.system_id}", self.hub.monotonic()) > 0:
                raise CallFailed(Fault.RATE_LIMITED, call.system_id)
            return await self._run(op, call, body)
        except CallFailed as failed:
            return Answer(vdxp.answer_fail(failed), failed.row.status)
        except Nonconforming as exc:  # [vdxp] strict: the rule the package breaks
            refused = CallFailed(Fault.NONCONFORMING, exc.detail)
            return Answer(vdxp.answer_fail(refused, exc.problem_name), refused.row.status)
        except AxisError as exc:
            fault = vdxp.FAULT_OF_PROBLEM.get(exc.problem_name, Fault.UNAVAILABLE)
            mapped = CallFailed(fault, exc.detail)
            # The native problem's own status (400 for malformed XML, 422 for a schema...).
            return Answer(vdxp.answer_fail(mapped, exc.problem_name), exc.status)
        except Exception:  # a bug: still an answer the SDK can read, and the trace logged
            log.exception("national axis face: %s failed", operation[:40])
            internal = CallFailed(Fault.UNAVAILABLE, "internal error")
            return Answer(vdxp.answer_fail(internal), 500)

    async def _authenticate(self, sent: Sequence[tuple[str, str]]) -> Call:
        system_id = next((v for k, v in sent if k.lower() == vdxp.SYSTEM_ID.lower()), "")
        # Once a call, first: the directory's changes committed anywhere before it are seen.
        await self.hub.cached_directory.refresh()
        system = await self.store.get_system(system_id) if system_id else None
        secret = self._secret(system) if system is not None and system.active else None
        return vdxp.authenticate(sent, lambda sid: secret if sid == system_id else None)

    def _secret(self, system: System) -> str:
        cached = (system.system_id, system.sealed_secret)
        if cached not in self._secrets:
            self._secrets[cached] = vdxp.unseal(system.sealed_secret, self._key, system.system_id)
        return self._secrets[cached]

    async def _run(self, op: Operation, call: Call, body: BodySource) -> Answer:
        if op is Operation.SEND_EDOC:
            async with self.hub.intake:  # an upload slot while it is read and verified
                return await self.send_edoc(call, await body())
        if op is Operation.GET_RECEIVED_EDOC_LIST:
            return Answer(await self.received_list(call))
        if op in (Operation.GET_EDOC, Operation.DOWNLOAD_EDOC):
            got = await self.get_edoc(call)
            if op is Operation.DOWNLOAD_EDOC:
                return Answer(got)
            return Answer(vdxp.answer_ok(data=pybase64.b64encode(got).decode("ascii")))
        if op is Operation.UPDATE_STATUS:
            return Answer(await self.update_status(call))
        if op is Operation.GET_SENT_EDOC_LIST:
            return Answer(await self.sent_list(call))
        if op in (Operation.COUNT_RECEIVE_EDOC, Operation.COUNT_RECEIVE_STATUS):
            kind = PackageKind.EDOC if op is Operation.COUNT_RECEIVE_EDOC else PackageKind.STATUS
            count = await self.store.count_received(call.system_id, kind)
            return Answer(vdxp.answer_ok(count=count))
        if op is Operation.REGISTER_AGENCY:
            return Answer(await self.register_agency(call, await body()))
        if op is Operation.DELETE_AGENCY:
            return Answer(await self.delete_agency(call))
        return Answer(await self.directory(op, call))

    async def _member(self, call: Call, code: str) -> tuple[Agency, str | None] | None:
        """The active agency of the calling system holding ``code``, and the code's
        successor once closed; None if no such agency of this system."""
        found = await self.hub.cached_directory.code_holder(code)
        if found is None:
            return None
        record, agency = found
        if agency is None or agency.system_id != call.system_id or not agency.active:
            return None
        return agency, record.successor

    # -- sending ----------------------------------------------------------------------------

    async def send_edoc(self, call: Call, body: bytes) -> Answer:
        """Take a package from one of the system's agencies (its edXML From)."""
        edxml = body.removesuffix(b"\r\n")  # the SDK frames the file with a CRLF
        sender = call.param("from") or ""
        if sender != call.system_id and await self._member(call, sender) is None:
            raise CallFailed(Fault.WRONG_FROM, call.system_id, from_=sender or "(none)")
        declared = (call.param("hash-file") or "").lower()
        if not declared:  # the SDK always sends it: without it, the body would be unsigned
            raise CallFailed(Fault.BAD_REQUEST, "hash-file is required on sendEdoc")
        digest = hashlib.sha256(edxml).digest()  # once: for hash-file and for the hub
        if declared != vdxp.unpadded_hex(digest) and (
            body == edxml or declared != vdxp.unpadded_sha256(body)  # a client without CRLF
        ):
            raise CallFailed(Fault.BAD_REQUEST, "hash-file is not the SHA-256 of the body sent")
        root = await self._offloaded(edxml, lambda: load_xml(edxml, self.hub.intake_policy.limits))
        claimed = formats.peek_sender(root)
        member = await self._member(call, claimed)
        if member is None:
            raise CallFailed(
                Fault.NOT_OF_SYSTEM, f"From/OrganId {claimed} is not an agency of {call.system_id}"
            )
        agency, successor = member
        intake.refuse_closed(claimed, successor)  # as on the node API
        read = await self._offloaded(edxml, lambda: self._read(root, agency))
        notes = _notes(call.system_id, read.deviations)
        tallies = [(Metric.FACE.value, call.system_id)]
        tallies += [
            (Metric.DEVIATIONS.value, f"{call.system_id} {d.rule}") for d in read.deviations
        ]
        accepted = await self.hub.admit(
            agency,
            await self.hub.codes(agency),
            read.package,
            edxml,
            notes,
            tuple(tallies),
            sha256=digest.hex(),
        )
        said = accepted.answer.get("notes", "")
        desc = f"{vdxp.ERRORS[Fault.NONCONFORMING].desc} (da ghi nhan): {said}" if said else ""
        taken = tuple((call.system_id, d.rule.value) for d in read.deviations)
        if not accepted.created:
            taken = ()  # counted once, when it was taken
        return Answer(vdxp.answer_ok(desc, DocId=accepted.answer["id"]), deviations=taken)

    async def _offloaded(self, edxml: bytes, work: Callable[[], T]) -> T:
        """``work`` inline for a small package, on a thread for a big one (as the node API)."""
        if len(edxml) <= INLINE_VERIFY_BYTES:
            return work()
        return await asyncio.to_thread(work)

    def _read(self, root: Any, agency: Agency) -> intake.FieldRead:
        def signer_for(claimed: str, tree: Any) -> Any:
            if agency.has_certificate:  # its registered one, as the node API checks
                return pki.load_cert(agency.cert_pem)
            return intake.key_info_signer(claimed, tree)  # else a trusted CA's, in KeyInfo

        return intake.read_field_tree(
            root,
            self.hub.intake_policy,
            lambda claimed: None,  # looked up already: an agency of this system, open
            signer_for,
            strict=self.settings.strict,
            require_signature=self.settings.require_signature,
            at=datetime.now(UTC),  # certificates are checked against the real time
        )

    # -- receiving --------------------------------------------------------------------------

    async def received_list(self, call: Call) -> dict[str, Any]:
        kind = _kind(call.param("messagetype"))
        # The SDK keeps a client's last updateStatus mark in every later call: a status that
        # comes with a docId is that leftover, not a filter (PROTOCOL.md: headers pile up).
        wanted = call.param("status") or ""
        leftover = call.param("docId", "docid") is not None
        chosen = ItemFilter.PENDING
        if wanted in vdxp.LIST_FILTERS and not leftover:
            chosen = ItemFilter(wanted)
        size = min(_positive(call.param("pageSize"), "pageSize", MAX_PAGE), MAX_PAGE)
        index = _positive(call.param("pageIndex"), "pageIndex", 1)
        query = ItemQuery(
            chosen,
            _utc(vdxp.parse_time(call.param("fromDate"), "fromDate")),
            _utc(vdxp.parse_time(call.param("toDate"), "toDate")),
            limit=size,
            offset=(index - 1) * size,
            fail_mark=Mark.FAIL.value,
        )
        data = []
        for record, deliveries in await self.store.received_items(call.system_id, kind, query):
            first = deliveries[0]
            state = vdxp.item_state(first.state.value, first.mark)
            data.append(
                {
                    "docId": record.id,
                    "serviceType": SERVICE_TYPE,
                    "messageType": record.kind.value,
                    "created_time": _time(record.received_at),
                    "updated_time": _time(max(d.updated_at for d in deliveries)),
                    "from": record.sender,
                    "to": ",".join(d.recipient for d in deliveries),  # its agencies it went to
                    "status": state.value,
                    "status_desc": vdxp.ITEM_STATES[state],
                    "notes": record.notes or "",
                }
            )
        return vdxp.answer_ok(data=data)

    async def _for_system(self, call: Call, doc_id: str | None) -> tuple[str, list[Agency]]:
        """The package ``doc_id`` and the system's agencies it was sent to, through the
        Hub's own checks; NOT_ALLOWED if it went to none of them."""
        if not doc_id:
            raise CallFailed(Fault.BAD_REQUEST, "docId is required")
        record = await self.hub.record(doc_id.strip())  # the hub's own rule for an id
        recipients = []
        for delivery in await self.store.system_deliveries(record.id, call.system_id):
            agency = await self.store.get_agency(delivery.recipient)
            if agency is not None and agency.active:
                recipients.append(agency)
        if not recipients:
            raise CallFailed(Fault.NOT_ALLOWED, f"{doc_id} was not sent to {call.system_id}")
        return record.id, recipients

    async def get_edoc(self, call: Call) -> bytes:
        """The stored bytes, fetched by each of the system's agencies it went to."""
        package_id, recipients = await self._for_system(call, call.param("docId", "docid"))
        body = b""
        for agency in recipients:
            _, body = await self.hub.fetch_record(agency, package_id)
        return body

    async def update_status(self, call: Call) -> dict[str, Any]:
        """A transport mark (``done``: the acknowledgement) on the system's deliveries."""
        text = (call.param("status") or "").strip()
        try:
            mark = Mark(text)
        except ValueError as exc:
            known = ", ".join(m.value for m in Mark)
            raise CallFailed(Fault.BAD_REQUEST, f"status {text!r} is none of {known}") from exc
        # updateStatus writes docid, getEdoc docId: both pile up on one SDK client object.
        package_id, recipients = await self._for_system(call, call.param("docid", "docId"))
        for agency in recipients:
            if vdxp.MARKS[mark].acknowledges:
                await self.hub.ack(agency, package_id)
            await self.store.mark_delivery(package_id, agency.organ_id, mark.value)
        return vdxp.answer_ok()

    async def sent_list(self, call: Call) -> dict[str, Any]:
        """Each recipient's state of a package one of the system's agencies sent."""
        doc_id = (call.param("docId", "docid") or "").strip()
        if not doc_id:
            raise CallFailed(Fault.BAD_REQUEST, "docId is required")
        record = await self.hub.record(doc_id)
        sender = await self.store.get_agency(record.sender)
        if sender is None or sender.system_id != call.system_id:
            raise CallFailed(Fault.NOT_ALLOWED, f"{doc_id} was not sent by {call.system_id}")
        code = record.document_id.rsplit(",", 1)[-1] if "," in record.document_id else ""
        data = []
        for delivery in await self.store.deliveries(record.id):
            state = vdxp.item_state(delivery.state.value, delivery.mark)
            reached = state not in (ItemState.INITIAL, ItemState.RECALLED)
            data.append(
                {
                    "serviceType": SERVICE_TYPE,
                    "senderDocId": record.id,
                    "receiverDocId": record.id,
                    "fromCode": record.sender,
                    "toCode": delivery.recipient,
                    "sendStatus": "done",
                    "sendStatusDesc": "Da gui",
                    "receiveStatus": state.value,
                    "receiveStatusDesc": vdxp.ITEM_STATES[state],
                    "statusCode": delivery.status_code or "",
                    "mark": delivery.mark or "",
                    "title": record.subject,
                    "notation": code,
                    "sentTime": _time(record.received_at),
                    "receivedTime": _time(delivery.updated_at) if reached else "",
                    "messageType": record.kind.value,
                }
            )
        return vdxp.answer_ok(data=data)

    # -- the directory ----------------------------------------------------------------------

    async def directory(self, op: Operation, call: Call) -> dict[str, Any]:
        """getAgenciesList, getAgenciesListQD20 and getSynchronizeUnit: every agency, as
        the national directory's records give them (code, oldCode, code102)."""
        codes: dict[str, list[str]] = {}
        for held in await self.store.agency_codes():
            if held.organ_id is not None and not held.closed:
                codes.setdefault(held.organ_id, []).append(held.code)
        data = []
        level = call.param("level")
        for n, agency in enumerate(await self.store.list_agencies(), start=1):
            mine = codes.get(agency.organ_id, [agency.organ_id])
            old = next((c for c in mine if ORGAN_ID_2016_RE.fullmatch(c)), "")
            new = next((c for c in mine if ORGAN_ID_QD20_RE.fullmatch(c)), "")
            parent = agency.system_id or ""
            if op is Operation.GET_AGENCIES_LIST:
                if agency.active:
                    other = new if agency.organ_id == old else old
                    data.append(
                        {"id": n, "pid": parent, "code": agency.organ_id, "name": agency.name,
                         "mail": "", "oldCode": other}
                    )  # fmt: skip
            elif op is Operation.GET_AGENCIES_LIST_QD20:
                if agency.active and new and (not level or str(new.count(".") + 1) == level):
                    data.append(
                        {"id": n, "code": new, "name": agency.name, "mail": "", "code102": old}
                    )
            else:
                data.append(
                    {"id": n, "pid": parent, "code": agency.organ_id, "name": agency.name,
                     "mail": "", "version": 1, "centerCode": agency.system_id or "",
                     "deleted": not agency.active,
                     "modifyDate": _time(agency.registered_at), "isAgency": True}
                )  # fmt: skip
        return vdxp.answer_ok(data=data)

    async def register_agency(self, call: Call, body: bytes) -> dict[str, Any]:
        """An agency the system speaks for; ``pcode`` is the system or one of its agencies."""
        try:
            asked = json.loads(body or b"{}")
        except ValueError as exc:
            raise CallFailed(Fault.BAD_REQUEST, "the body is not JSON") from exc
        if not isinstance(asked, dict):
            raise CallFailed(Fault.BAD_REQUEST, "the body is not a JSON object")
        code, name = str(asked.get("code") or ""), str(asked.get("name") or "").strip()
        parent = str(asked.get("pcode") or "")
        if not is_organ_id(code):
            raise CallFailed(Fault.BAD_REQUEST, f"code {code!r} is not an OrganId")
        if not name:
            raise CallFailed(Fault.BAD_REQUEST, "name is required")
        if parent != call.system_id and await self._member(call, parent) is None:
            raise CallFailed(
                Fault.NOT_ALLOWED,
                f"pcode {parent!r}: neither system {call.system_id} nor one of its agencies",
            )
        existing = await self.store.get_agency(code)
        if existing is not None:
            if existing.system_id != call.system_id:
                raise CallFailed(
                    Fault.NOT_ALLOWED, f"{code} is registered, not to {call.system_id}"
                )
            if not existing.active:  # revoked: an operator reinstates it (axis agency)
                raise CallFailed(Fault.NOT_ALLOWED, f"{code} is revoked")
            return vdxp.answer_ok("Don vi da dang ky")
        agency = Agency(
            organ_id=code,
            name=name,
            cert_pem=b"",
            # A fingerprint no certificate has (they are hex): the node API never matches it.
            fingerprint=f"system:{call.system_id}:{code}",
            registered_at=self.hub.clock(),
            system_id=call.system_id,
        )
        try:
            await self.store.add_agency(agency)
        except DuplicateConflict as exc:
            raise CallFailed(Fault.DUPLICATE, exc.detail) from exc
        return vdxp.answer_ok()

    async def delete_agency(self, call: Call) -> dict[str, Any]:
        """Revoke one of the system's agencies (its history stays)."""
        code = call.param("AgencyCode", "agencyCode") or ""
        member = await self._member(call, code)
        if member is None or member[0].organ_id != code:
            raise CallFailed(Fault.NOT_ALLOWED, f"{code!r} is not an agency of {call.system_id}")
        await self.store.set_agency_active(code, False)
        return vdxp.answer_ok()


def _notes(system_id: str, deviations: tuple[conformance.Deviation, ...]) -> str:
    """What the log, the trace, track and the recipients are told of a package this face
    took: which system vouched for it and how it deviates (nothing for a signed, conforming
    one)."""
    if not deviations:
        return ""
    return f"via system {system_id}: " + "; ".join(str(d) for d in deviations)


def _kind(messagetype: str | None) -> PackageKind:
    text = (messagetype or "edoc").strip().lower()
    if text not in ("edoc", "status"):
        raise CallFailed(
            Fault.BAD_REQUEST, f"messagetype {messagetype!r} is neither edoc nor status"
        )
    return PackageKind(text)


def _positive(text: str | None, name: str, default: int, most: int = 1_000_000) -> int:
    if not text:
        return default
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= most:
        raise CallFailed(
            Fault.BAD_REQUEST, f"{name} {text[:20]!r} is not a number from 1 to {most}"
        )
    return int(digits)


def _operation(name: str) -> Operation:
    try:
        return Operation(name)
    except ValueError as exc:
        raise CallFailed(Fault.BAD_REQUEST, f"no operation {name[:40]!r}") from exc


def _utc(local: datetime | None) -> datetime | None:
    return None if local is None else local.replace(tzinfo=VIETNAM)


def _time(at: datetime) -> str:
    return at.astimezone(VIETNAM).strftime(vdxp.TIME_FORMAT)


__all__ = ["Answer", "BodySource", "NationalFace"]
