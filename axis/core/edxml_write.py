"""Writing edXML: typed values (:mod:`axis.core.edxml_model`) into unsigned trees that validate,
children in the standard's order (tolerance is for reading; what Axis writes is what
QCVN 102:2016 lays out, so that every receiver's parser reads it).

:func:`axis.core.edxml_schema.header` is where a signature then goes.
"""

from __future__ import annotations

import pybase64
from lxml import etree

from axis.core.edxml_model import (
    NS,
    DocumentChanges,
    Edoc,
    Organ,
    Replacement,
    ResponseFor,
    StatusNotice,
    format_date,
    format_timestamp,
)
from axis.core.edxml_schema import validate
from axis.errors import SchemaViolation


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def to_bytes(root: etree._Element) -> bytes:
    """Serialize a tree as UTF-8 with an XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, _q(name))
    if text is not None:
        node.text = text
    return node


def _sub_opt(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        _sub(parent, name, text)


def _build_organ(parent: etree._Element, name: str, organ: Organ) -> None:
    node = _sub(parent, name)
    _sub(node, "OrganId", organ.organ_id)
    _sub(node, "OrganName", organ.organ_name)
    _sub_opt(node, "OrganizationInCharge", organ.organization_in_charge)
    _sub_opt(node, "OrganAdd", organ.organ_add)
    _sub_opt(node, "Email", organ.email)
    _sub_opt(node, "Telephone", organ.telephone)
    _sub_opt(node, "Fax", organ.fax)
    _sub_opt(node, "Website", organ.website)


def _build_response_for(parent: etree._Element, response: ResponseFor) -> None:
    node = _sub(parent, "ResponseFor")
    _sub(node, "OrganId", response.organ_id)
    _sub(node, "Code", response.code)
    _sub(node, "PromulgationDate", format_date(response.promulgation_date))
    _sub(node, "DocumentId", response.document_id)


def _new_envelope_header() -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(_q("edXML"), nsmap={None: NS})  # type: ignore[dict-item]
    envelope = _sub(root, "edXMLEnvelope")
    return root, envelope, _sub(envelope, "edXMLHeader")


def _build_edoc_message(head: etree._Element, edoc: Edoc) -> None:
    message = _sub(head, "MessageHeader")
    _build_organ(message, "From", edoc.sender)
    for recipient in edoc.recipients:
        _build_organ(message, "To", recipient)
    _sub(message, "DocumentId", edoc.document_id)
    code = _sub(message, "Code")
    _sub(code, "CodeNumber", edoc.code_number)
    _sub(code, "CodeNotation", edoc.code_notation)
    promulgation = _sub(message, "PromulgationInfo")
    _sub(promulgation, "Place", edoc.place)
    _sub(promulgation, "PromulgationDate", format_date(edoc.promulgation_date))
    doc_type = _sub(message, "DocumentType")
    _sub(doc_type, "Type", edoc.doc_type)
    _sub(doc_type, "TypeDetail", edoc.type_detail)
    _sub_opt(doc_type, "TypeName", edoc.type_name)
    _sub(message, "Subject", edoc.subject)
    _sub_opt(message, "Content", edoc.content)
    if edoc.signer is not None:
        signer = _sub(message, "SignerInfo")
        _sub_opt(signer, "Competence", edoc.signer.competence)
        _sub_opt(signer, "Position", edoc.signer.position)
        _sub(signer, "FullName", edoc.signer.full_name)
    if edoc.due_date is not None:
        _sub(message, "DueDate", format_date(edoc.due_date))
    _sub(_sub(message, "OtherInfo"), "Priority", str(edoc.priority))
    if edoc.steering_type is not None:
        _sub(message, "SteeringType", str(edoc.steering_type))
    if edoc.to_places:
        places = _sub(message, "ToPlaces")
        for place in edoc.to_places:
            _sub(places, "Place", place)
    for response in edoc.response_for:
        _build_response_for(message, response)


def _build_trace_list(head: etree._Element, edoc: Edoc) -> None:
    trace_list = _sub(head, "TraceHeaderList")
    for trace in edoc.traces:
        node = _sub(trace_list, "TraceHeader")
        _sub(node, "OrganId", trace.organ_id)
        _sub(node, "Timestamp", format_timestamp(trace.timestamp))
    business = _sub(trace_list, "Bussiness")
    _sub_opt(business, "DocumentId", edoc.business.document_id)
    _sub(business, "BussinessDocType", str(int(edoc.business.doc_type)))
    _sub_opt(business, "BussinessDocReason", edoc.business.reason)
    _build_changes(business, edoc.business.changes)
    _build_replacements(business, edoc.business.replacements)


def _flag(value: bool | None) -> str | None:
    return None if value is None else str(int(value))


def _build_changes(business: etree._Element, changes: DocumentChanges | None) -> None:
    if changes is None:
        return
    node = _sub(business, "BussinessDocumentInfo")
    _sub_opt(node, "DocumentInfo", _flag(changes.document_info))
    _sub_opt(node, "DocumentReceiver", _flag(changes.document_receiver))
    if changes.receivers:
        receivers = _sub(node, "ReceiverList")
        for receiver in changes.receivers:
            item = _sub(receivers, "Receiver")
            _sub(item, "OrganId", receiver.organ_id)
            _sub_opt(item, "ReceiverType", receiver.receiver_type)


def _build_replacements(business: etree._Element, replacements: tuple[Replacement, ...]) -> None:
    if not replacements:
        return
    node = _sub(business, "ReplacementInfoList")
    for replacement in replacements:
        info = _sub(node, "ReplacementInfo")
        _sub(info, "DocumentId", replacement.document_id)
        if replacement.organ_ids:
            organs = _sub(info, "OrganIdList")
            for organ_id in replacement.organ_ids:
                _sub(organs, "OrganId", organ_id)


def _build_attachments(root: etree._Element, envelope: etree._Element, edoc: Edoc) -> None:
    manifest = _sub(_sub(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    if not edoc.attachments:
        return
    encoded = _sub(root, "AttachmentEncoded")
    for item in edoc.attachments:
        reference = _sub(manifest, "Reference")
        _sub(reference, "ContentId", item.content_id)
        _sub(reference, "ContentType", item.content_type)
        _sub_opt(reference, "Description", item.description)
        _sub(reference, "AttachmentName", item.name)
        attachment = _sub(encoded, "Attachment")
        _sub(attachment, "ContentId", item.content_id)
        _sub(attachment, "AttachmentName", item.name)
        _sub_opt(attachment, "Description", item.description)
        _sub(attachment, "ContentType", item.content_type)
        data = pybase64.b64encode(item.data).decode("ascii")
        _sub(attachment, "ContentTransferEncoded", data)


def build_edoc(edoc: Edoc, *, check: bool = True) -> etree._Element:
    """An unsigned edoc tree; attachments base64-encoded, one manifest Reference each.

    With ``check`` (the default) the tree is validated. Raises SchemaViolation for values the
    schema refuses or that XML cannot hold (control characters).
    """
    try:
        root, envelope, head = _new_envelope_header()
        _build_edoc_message(head, edoc)
        _build_trace_list(head, edoc)
        _build_attachments(root, envelope, edoc)
    except (ValueError, TypeError) as exc:
        raise SchemaViolation(f"cannot build the edoc: {exc}") from exc
    if check:
        validate(root)
    return root


def build_status(notice: StatusNotice, *, check: bool = True) -> etree._Element:
    """An unsigned status tree. With ``check`` (the default) it is validated.

    Raises SchemaViolation for values the schema refuses or that XML cannot hold.
    """
    try:
        root, _envelope, head = _new_envelope_header()
        message = _sub(head, "MessageHeader")
        _build_organ(message, "From", notice.sender)
        _build_response_for(message, notice.response_for)
        if notice.staff_department is not None or notice.staff_name is not None:
            staff = _sub(message, "StaffInfo")
            _sub_opt(staff, "Department", notice.staff_department)
            _sub_opt(staff, "Staff", notice.staff_name)
        _sub(message, "StatusCode", notice.status_code)
        _sub_opt(message, "Description", notice.description)
        _sub(message, "Timestamp", format_timestamp(notice.timestamp))
    except (ValueError, TypeError) as exc:
        raise SchemaViolation(f"cannot build the status: {exc}") from exc
    if check:
        validate(root)
    return root
