"""Reading a validated edXML tree into typed values (:mod:`axis.core.edxml_model`).

Children are found by name, never by position or prefix: senders disagree on both. An
optional element left empty counts as absent. The identifiers a package acts on are read
whole, and a malformed one is refused naming its element: the edoc's DocumentId, the document
a follow-up names (``Bussiness/DocumentId``, ``ReplacementInfo/DocumentId``). The one a
status answers is checked by routing, which knows whether the hub holds a document the
national axis's face took under another form. What the standard leaves informative is kept as
written: a new document's
``Bussiness/DocumentId`` (the SDKs' examples leave an impossible date there), an edoc's
``ResponseFor``.
"""

from __future__ import annotations

import pybase64
from lxml import etree

from axis.core.edxml_model import (
    NS,
    STATUS_CODES,
    Attachment,
    Business,
    BusinessDocType,
    DocumentChanges,
    Edoc,
    Organ,
    Package,
    PackageKind,
    Receiver,
    Replacement,
    ResponseFor,
    SignerInfo,
    StatusNotice,
    Trace,
    is_organ_id,
    parse_date,
    parse_document_id,
    parse_timestamp,
)
from axis.core.edxml_schema import header, package_kind
from axis.errors import SchemaViolation

_NSMAP = {"e": NS}


def peek_sender(root: etree._Element) -> str:
    """``From/OrganId`` of an unverified tree, only to find whose certificate to check.

    Raises SchemaViolation if it is missing or not an OrganId.
    """
    node = header(root).find("e:MessageHeader/e:From/e:OrganId", _NSMAP)
    value = node.text if node is not None else None
    if value is None or not is_organ_id(value):
        raise SchemaViolation("MessageHeader/From/OrganId: missing, or not an OrganId")
    return value


def _find(parent: etree._Element, path: str) -> etree._Element:
    node = parent.find(path, _NSMAP)
    if node is None:
        raise SchemaViolation(f"{path.replace('e:', '')} is missing")
    return node


def _req(parent: etree._Element, path: str) -> str:
    return _find(parent, path).text or ""


def _opt(parent: etree._Element, path: str) -> str | None:
    """An optional element's text; left empty, it counts as absent."""
    node = parent.find(path, _NSMAP)
    return node.text or None if node is not None else None


def _small_int(text: str, highest: int, what: str) -> int:
    if len(text) != 1 or not "0" <= text <= str(highest):
        raise SchemaViolation(f"{what} must be 0..{highest}, not {text!r}")
    return int(text)


def _flag(text: str | None) -> bool | None:
    return None if text is None else text == "1"


def _parse_organ(node: etree._Element) -> Organ:
    return Organ(
        organ_id=_req(node, "e:OrganId"),
        organ_name=_req(node, "e:OrganName"),
        organization_in_charge=_opt(node, "e:OrganizationInCharge"),
        organ_add=_opt(node, "e:OrganAdd"),
        email=_opt(node, "e:Email"),
        telephone=_opt(node, "e:Telephone"),
        fax=_opt(node, "e:Fax"),
        website=_opt(node, "e:Website"),
    )


def _parse_response_for(node: etree._Element) -> ResponseFor:
    document_id = _req(node, "e:DocumentId")
    # The document a status answers: of the standard's form, or one the national axis's face
    # took with another (a UUID) that the hub holds, which routing finds or refuses by the
    # form's rule (axis.core.routing).
    return ResponseFor(
        organ_id=_req(node, "e:OrganId"),
        code=_req(node, "e:Code"),
        promulgation_date=parse_date(
            _req(node, "e:PromulgationDate"), "ResponseFor/PromulgationDate"
        ),
        document_id=document_id,
    )


def decode_base64(text: str) -> bytes:
    """Base64 as XML carries it, in lines or not: the alphabet and its padding, nothing else
    once the whitespace between lines is dropped (pybase64: 3 us for a 27 KB attachment,
    against 130 for binascii; dropping whitespace costs 40, so only text that has some pays).

    Raises ValueError (binascii.Error): it is not base64."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:
        return pybase64.b64decode("".join(text.split()), validate=True)


def _parse_attachment(node: etree._Element) -> Attachment:
    try:
        data = decode_base64(_req(node, "e:ContentTransferEncoded"))
    except ValueError as exc:
        raise SchemaViolation("Attachment/ContentTransferEncoded is not base64") from exc
    return Attachment(
        content_id=_req(node, "e:ContentId"),
        name=_req(node, "e:AttachmentName"),
        content_type=_req(node, "e:ContentType"),
        data=data,
        description=_opt(node, "e:Description"),
    )


def _parse_changes(node: etree._Element | None) -> DocumentChanges | None:
    if node is None:
        return None
    return DocumentChanges(
        document_info=_flag(_opt(node, "e:DocumentInfo")),
        document_receiver=_flag(_opt(node, "e:DocumentReceiver")),
        receivers=tuple(
            Receiver(_req(r, "e:OrganId"), _opt(r, "e:ReceiverType"))
            for r in node.iterfind("e:ReceiverList/e:Receiver", _NSMAP)
        ),
    )


def _parse_replacements(node: etree._Element) -> tuple[Replacement, ...]:
    where = "ReplacementInfoList/ReplacementInfo/DocumentId"
    replacements = []
    for info in node.iterfind("e:ReplacementInfoList/e:ReplacementInfo", _NSMAP):
        document_id = _req(info, "e:DocumentId")
        parse_document_id(document_id, where)
        organ_ids = tuple(n.text or "" for n in info.iterfind("e:OrganIdList/e:OrganId", _NSMAP))
        replacements.append(Replacement(document_id, organ_ids))
    return tuple(replacements)


def _parse_business(trace_list: etree._Element) -> Business:
    node = _find(trace_list, "e:Bussiness")
    doc_type = BusinessDocType(_small_int(_req(node, "e:BussinessDocType"), 3, "BussinessDocType"))
    document_id = _opt(node, "e:DocumentId")
    if document_id is not None and doc_type is not BusinessDocType.NEW:
        parse_document_id(document_id, "Bussiness/DocumentId")  # the document it acts on
    return Business(
        doc_type=doc_type,
        document_id=document_id,
        reason=_opt(node, "e:BussinessDocReason"),
        changes=_parse_changes(node.find("e:BussinessDocumentInfo", _NSMAP)),
        replacements=_parse_replacements(node),
    )


def _parse_traces(trace_list: etree._Element) -> tuple[Trace, ...]:
    where = "TraceHeader/Timestamp"
    return tuple(
        Trace(_req(node, "e:OrganId"), parse_timestamp(_req(node, "e:Timestamp"), where))
        for node in trace_list.iterfind("e:TraceHeader", _NSMAP)
    )


def _parse_signer(message: etree._Element) -> SignerInfo | None:
    node = message.find("e:SignerInfo", _NSMAP)
    if node is None:
        return None
    return SignerInfo(
        _req(node, "e:FullName"), _opt(node, "e:Competence"), _opt(node, "e:Position")
    )


def _parse_edoc(root: etree._Element) -> Edoc:
    head = header(root)
    message = _find(head, "e:MessageHeader")
    trace_list = _find(head, "e:TraceHeaderList")
    document_id = _req(message, "e:DocumentId")
    parse_document_id(document_id, "MessageHeader/DocumentId")
    due = _opt(message, "e:DueDate")
    priority = _opt(message, "e:OtherInfo/e:Priority")
    steering = _opt(message, "e:SteeringType")
    promulgated = _req(message, "e:PromulgationInfo/e:PromulgationDate")
    return Edoc(
        sender=_parse_organ(_find(message, "e:From")),
        recipients=tuple(_parse_organ(n) for n in message.iterfind("e:To", _NSMAP)),
        document_id=document_id,
        code_number=_req(message, "e:Code/e:CodeNumber"),
        code_notation=_req(message, "e:Code/e:CodeNotation"),
        place=_req(message, "e:PromulgationInfo/e:Place"),
        promulgation_date=parse_date(promulgated, "PromulgationInfo/PromulgationDate"),
        doc_type=_req(message, "e:DocumentType/e:Type"),
        type_detail=_req(message, "e:DocumentType/e:TypeDetail"),
        type_name=_opt(message, "e:DocumentType/e:TypeName"),
        subject=_req(message, "e:Subject"),
        content=_opt(message, "e:Content"),
        signer=_parse_signer(message),
        due_date=None if due is None else parse_date(due, "MessageHeader/DueDate"),
        priority=0 if priority is None else _small_int(priority, 4, "OtherInfo/Priority"),
        steering_type=None if steering is None else _small_int(steering, 2, "SteeringType"),
        to_places=tuple(n.text or "" for n in message.iterfind("e:ToPlaces/e:Place", _NSMAP)),
        response_for=tuple(
            _parse_response_for(n) for n in message.iterfind("e:ResponseFor", _NSMAP)
        ),
        traces=_parse_traces(trace_list),
        business=_parse_business(trace_list),
        attachments=tuple(
            _parse_attachment(n) for n in root.iterfind("e:AttachmentEncoded/e:Attachment", _NSMAP)
        ),
    )


def _parse_status(root: etree._Element) -> StatusNotice:
    message = _find(header(root), "e:MessageHeader")
    code = _req(message, "e:StatusCode")
    if code not in STATUS_CODES:
        raise SchemaViolation(f"StatusCode: {code!r} is none of {', '.join(STATUS_CODES)}")
    return StatusNotice(
        sender=_parse_organ(_find(message, "e:From")),
        response_for=_parse_response_for(_find(message, "e:ResponseFor")),
        status_code=code,
        timestamp=parse_timestamp(_req(message, "e:Timestamp"), "MessageHeader/Timestamp"),
        description=_opt(message, "e:Description"),
        staff_department=_opt(message, "e:StaffInfo/e:Department"),
        staff_name=_opt(message, "e:StaffInfo/e:Staff"),
    )


def parse_package(root: etree._Element) -> Package:
    """Typed values of a validated (and, in the hub, verified) package.

    Raises SchemaViolation on anything it cannot convert (a missing element, a bad date or
    DocumentId, bad base64), naming the element. The SDKs' extra elements and the optional
    blocks Axis does not act on (Appendixes, Paper, StaffInfo of Bussiness) are not carried
    over.
    """
    if package_kind(root) is PackageKind.STATUS:
        return _parse_status(root)
    return _parse_edoc(root)
