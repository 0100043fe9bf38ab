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
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from axis.core import conformance, intake, pki, vdxp
from axis.core.formats import ORGAN_ID_2016_RE, ORGAN_ID_QD20_RE, PackageKind, is_organ_id
from axis.core.lifecycle import DeliveryEvent, InvalidTransition
from axis.core.stats import Metric
from axis.core.vdxp import Call, CallFailed, Fault, ItemState, Mark, Operation
from axis.errors import AxisError, DuplicateConflict, InputError, SenderMismatch
from axis.host.config import VdxpSettings
from axis.store.base import Agency, Delivery, ItemFilter, ItemQuery, PackageRecord, System
from axis.usecases.hub import INLINE_VERIFY_BYTES, Hub

VIETNAM = timezone(timedelta(hours=7))
SERVICE_TYPE = "eDoc"
MAX_PAGE = 1000  # the largest page of a received list (the SDK's example asks for all)


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

    async def call(self, operation: str, sent: Sequence[tuple[str, str]], body: bytes) -> Answer:
        """Authenticate and run one call; every refusal is an answer with ``status: FAIL``."""
        try:
            call = await self._authenticate(sent)
            try:
                op = Operation(operation)
            except ValueError as exc:
                raise CallFailed(Fault.BAD_REQUEST, f"no operation {operation!r}") from exc
            if self.hub.limiter.take(f"system {call.system_id}", self.hub.monotonic()) > 0:
                raise CallFailed(Fault.RATE_LIMITED, call.system_id)
            return await self._run(op, call, body)
        except CallFailed as failed:
            return Answer(vdxp.answer_fail(failed), failed.row.status)
        except AxisError as exc:
            fault = vdxp.FAULT_OF_PROBLEM.get(exc.problem_name, Fault.UNAVAILABLE)
            mapped = CallFailed(fault, exc.detail)
            # The native problem's own status (400 for malformed XML, 422 for a schema...).
            return Answer(vdxp.answer_fail(mapped, exc.problem_name), exc.status)

    async def _authenticate(self, sent: Sequence[tuple[str, str]]) -> Call:
        system_id = next((v for k, v in sent if k.lower() == vdxp.SYSTEM_ID.lower()), "")
        system = await self.store.get_system(system_id) if system_id else None
        secret = self._secret(system) if system is not None and system.active else None
        return vdxp.authenticate(sent, lambda sid: secret if sid == system_id else None)

    def _secret(self, system: System) -> str:
        cached = (system.system_id, system.sealed_secret)
        if cached not in self._secrets:
            self._secrets[cached] = vdxp.unseal(system.sealed_secret, self._key, system.system_id)
        return self._secrets[cached]

    async def _run(self, op: Operation, call: Call, body: bytes) -> Answer:
        if op is Operation.SEND_EDOC:
            agencies = [a for a in await self.store.system_agencies(call.system_id) if a.active]
            return await self.send_edoc(call, agencies, body)
        return Answer(await self._operation(op, call, body))

    async def _operation(self, op: Operation, call: Call, body: bytes) -> dict[str, Any] | bytes:
        agencies = [a for a in await self.store.system_agencies(call.system_id) if a.active]
        if op is Operation.GET_RECEIVED_EDOC_LIST:
            return await self.received_list(call, agencies)
        if op in (Operation.GET_EDOC, Operation.DOWNLOAD_EDOC):
            got = await self.get_edoc(call, agencies)
            if op is Operation.DOWNLOAD_EDOC:
                return got
            return vdxp.answer_ok(data=base64.b64encode(got).decode("ascii"))
        if op is Operation.UPDATE_STATUS:
            return await self.update_status(call, agencies)
        if op is Operation.GET_SENT_EDOC_LIST:
            return await self.sent_list(call, agencies)
        if op in (Operation.COUNT_RECEIVE_EDOC, Operation.COUNT_RECEIVE_STATUS):
            kind = PackageKind.EDOC if op is Operation.COUNT_RECEIVE_EDOC else PackageKind.STATUS
            count = await self.store.count_received([a.organ_id for a in agencies], kind)
            return vdxp.answer_ok(count=count)
        if op is Operation.REGISTER_AGENCY:
            return await self.register_agency(call, agencies, body)
        if op is Operation.DELETE_AGENCY:
            return await self.delete_agency(call, agencies)
        return await self.directory(op, call)

    # -- sending ----------------------------------------------------------------------------

    async def send_edoc(self, call: Call, agencies: list[Agency], body: bytes) -> Answer:
        """Take a package from one of the system's agencies (its edXML From)."""
        edxml = body.removesuffix(b"\r\n")  # the SDK frames the file with a CRLF
        declared = call.param("hash-file")
        if declared and declared.lower() not in {
            vdxp.unpadded_sha256(edxml),
            vdxp.unpadded_sha256(body),
        }:
            raise CallFailed(Fault.BAD_REQUEST, "hash-file is not the SHA-256 of the body sent")
        members = {a.organ_id: a for a in agencies}
        codes_of = {a.organ_id: await self.hub.codes(a) for a in agencies}
        holder = {code: organ for organ, codes in codes_of.items() for code in codes}
        sender = call.param("from") or ""
        if sender != call.system_id and sender not in holder:
            raise CallFailed(
                Fault.WRONG_FROM,
                call.system_id,
                from_=sender or "(none)",
            )
        read = await self._read(call, edxml, holder, members)
        agency = members[holder[read.package.sender.organ_id]]
        notes = _notes(call.system_id, read.deviations)
        tallies = [(Metric.FACE.value, call.system_id)]
        tallies += [
            (Metric.DEVIATIONS.value, f"{call.system_id} {d.rule}") for d in read.deviations
        ]
        accepted = await self.hub.admit(
            agency, codes_of[agency.organ_id], read.package, edxml, notes, tuple(tallies)
        )
        said = accepted.answer.get("notes", "")
        desc = f"{vdxp.ERRORS[Fault.NONCONFORMING].desc} (da ghi nhan): {said}" if said else ""
        taken = tuple((call.system_id, d.rule.value) for d in read.deviations)
        if not accepted.created:
            taken = ()  # counted once, when it was taken
        return Answer(vdxp.answer_ok(desc, DocId=accepted.answer["id"]), deviations=taken)

    async def _read(
        self, call: Call, edxml: bytes, holder: dict[str, str], members: dict[str, Agency]
    ) -> intake.FieldRead:
        def sender_check(claimed: str) -> None:
            if claimed not in holder:
                raise SenderMismatch(
                    f"From/OrganId {claimed} is not an agency of system {call.system_id}"
                )

        def signer_for(claimed: str, root: Any) -> Any:
            agency = members[holder[claimed]]
            if agency.has_certificate:
                return pki.load_cert(agency.cert_pem)
            return intake.key_info_signer(claimed, root)

        def read() -> intake.FieldRead:
            return intake.read_field_package(
                edxml,
                self.hub.intake_policy,
                sender_check,
                signer_for,
                strict=self.settings.strict,
                require_signature=self.settings.require_signature,
                at=self.hub.clock(),
            )

        if len(edxml) <= INLINE_VERIFY_BYTES:
            return read()
        async with self.hub.intake:
            return await asyncio.to_thread(read)

    # -- receiving --------------------------------------------------------------------------

    async def received_list(self, call: Call, agencies: list[Agency]) -> dict[str, Any]:
        kind = _kind(call.param("messagetype"))
        wanted = call.param("status") or ""
        chosen = ItemFilter(wanted) if wanted in vdxp.LIST_FILTERS else ItemFilter.PENDING
        size = _positive(call.param("pageSize"), "pageSize", MAX_PAGE)
        index = _positive(call.param("pageIndex"), "pageIndex", 1)
        query = ItemQuery(
            chosen,
            _utc(vdxp.parse_time(call.param("fromDate"), "fromDate")),
            _utc(vdxp.parse_time(call.param("toDate"), "toDate")),
            limit=min(size, MAX_PAGE),
            offset=(index - 1) * min(size, MAX_PAGE),
        )
        items = await self.store.received_items([a.organ_id for a in agencies], kind, query)
        seen: set[str] = set()
        data = []
        for record, delivery in items:
            if record.id in seen:  # two of the system's agencies: one item
                continue
            seen.add(record.id)
            state = vdxp.item_state(delivery.state.value, delivery.mark)
            data.append(
                {
                    "docId": record.id,
                    "serviceType": SERVICE_TYPE,
                    "messageType": record.kind.value,
                    "created_time": _time(record.received_at),
                    "updated_time": _time(delivery.updated_at),
                    "from": record.sender,
                    "to": delivery.recipient,
                    "status": state.value,
                    "status_desc": vdxp.ITEM_STATES[state],
                    "notes": record.notes or "",
                }
            )
        return vdxp.answer_ok(data=data)

    async def _mine(
        self, call: Call, agencies: list[Agency], doc_id: str | None
    ) -> tuple[PackageRecord, list[Delivery]]:
        """The package ``doc_id`` and the system's deliveries of it (none if it sent it)."""
        if not doc_id:
            raise CallFailed(Fault.BAD_REQUEST, "docId is required")
        record = await self.store.get_record(doc_id.strip())
        if record is None:
            raise CallFailed(Fault.UNKNOWN_DOCUMENT, doc_id)
        members = {a.organ_id for a in agencies}
        deliveries = [d for d in await self.store.deliveries(record.id) if d.recipient in members]
        if not deliveries and record.sender not in members:
            raise CallFailed(Fault.NOT_ALLOWED, f"{doc_id} is not for system {call.system_id}")
        return record, deliveries

    async def get_edoc(self, call: Call, agencies: list[Agency]) -> bytes:
        """The stored bytes; each of the system's deliveries of it is now fetched."""
        record, deliveries = await self._mine(call, agencies, call.param("docId", "docid"))
        for delivery in deliveries:
            await self._move(delivery, DeliveryEvent.FETCHED)
        found = await self.store.get_package(record.id)
        if found is None:  # pragma: no cover - a package is never deleted
            raise CallFailed(Fault.UNKNOWN_DOCUMENT, record.id)
        return found[1]

    async def update_status(self, call: Call, agencies: list[Agency]) -> dict[str, Any]:
        """A transport mark (``done``: the acknowledgement) on the system's deliveries."""
        # updateStatus writes docid, getEdoc docId: both pile up on one SDK client object.
        doc_id = call.param("docid", "docId")
        text = (call.param("status") or "").strip()
        try:
            mark = Mark(text)
        except ValueError as exc:
            known = ", ".join(m.value for m in Mark)
            raise CallFailed(Fault.BAD_REQUEST, f"status {text!r} is none of {known}") from exc
        record, deliveries = await self._mine(call, agencies, doc_id)
        if not deliveries:
            raise CallFailed(
                Fault.NOT_ALLOWED, f"{record.id} was not sent to system {call.system_id}"
            )
        for delivery in deliveries:
            if vdxp.MARKS[mark].acknowledges:
                await self._move(delivery, DeliveryEvent.ACKED)
            await self.store.mark_delivery(record.id, delivery.recipient, mark.value)
        return vdxp.answer_ok()

    async def _move(self, delivery: Delivery, event: DeliveryEvent) -> None:
        try:
            await self.store.apply_event(
                delivery.package_id, delivery.recipient, event, self.hub.clock()
            )
        except InvalidTransition as exc:
            raise CallFailed(
                Fault.NOT_ALLOWED, f"{delivery.package_id} is {exc.state} for {delivery.recipient}"
            ) from exc

    async def sent_list(self, call: Call, agencies: list[Agency]) -> dict[str, Any]:
        """Each recipient's state of a package one of the system's agencies sent."""
        record, _ = await self._mine(call, agencies, call.param("docId", "docid"))
        if record.sender not in {a.organ_id for a in agencies}:
            raise CallFailed(
                Fault.NOT_ALLOWED, f"{record.id} was not sent by system {call.system_id}"
            )
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

    async def register_agency(
        self, call: Call, agencies: list[Agency], body: bytes
    ) -> dict[str, Any]:
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
        if parent != call.system_id and parent not in {a.organ_id for a in agencies}:
            raise CallFailed(
                Fault.NOT_ALLOWED,
                f"pcode {parent!r}: neither system {call.system_id} nor one of its agencies",
            )
        existing = await self.store.get_agency(code)
        if existing is not None:
            if existing.system_id == call.system_id:
                if not existing.active:
                    await self.store.set_agency_active(code, True)
                return vdxp.answer_ok("Don vi da dang ky")
            raise CallFailed(Fault.NOT_ALLOWED, f"{code} is registered, not to {call.system_id}")
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

    async def delete_agency(self, call: Call, agencies: list[Agency]) -> dict[str, Any]:
        """Revoke one of the system's agencies (its history stays)."""
        code = call.param("AgencyCode", "agencyCode") or ""
        if code not in {a.organ_id for a in agencies}:
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


def _positive(text: str | None, name: str, default: int) -> int:
    if not text:
        return default
    if not text.strip().isdigit() or int(text) < 1:
        raise CallFailed(Fault.BAD_REQUEST, f"{name} {text!r} is not a positive integer")
    return int(text)


def _utc(local: datetime | None) -> datetime | None:
    return None if local is None else local.replace(tzinfo=VIETNAM)


def _time(at: datetime) -> str:
    return at.astimezone(VIETNAM).strftime(vdxp.TIME_FORMAT)


__all__ = ["Answer", "InputError", "NationalFace"]
