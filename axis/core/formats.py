"""The edXML package format of QCVN 102:2016: typed values, XSD validation, parse and build.

Theory of operation: bytes from outside go through :func:`load_xml` (the hardened parser in
:mod:`axis.core.xmlsafe`), then :func:`validate` against ``schemas/edoc.xsd`` or
``schemas/status.xsd`` (chosen by :func:`package_kind`), then, once the signature is verified
elsewhere, :func:`parse_package` turns the tree into an :class:`Edoc` or a
:class:`StatusNotice`. :func:`build_edoc` and :func:`build_status` go the other way and produce
unsigned trees that validate; :func:`header` is where a signature goes.

Elements are found by namespace, never by prefix: agency software declares the edXML namespace
as the default on the root and as the prefix ``edXML`` further in. Values are taken exactly as
written (no trimming); the schemas refuse identifiers and dates with surrounding blanks.
This module does no I/O except reading the XSD files once per thread.
"""

from __future__ import annotations

import base64
import binascii
import threading
from pathlib import Path

from lxml import etree

from axis.core.edxml_model import (
    DS_NS,
    NS,
    ORGAN_ID_RE,
    STATUS_CODES,
    Attachment,
    Business,
    BusinessDocType,
    Edoc,
    Organ,
    Package,
    PackageKind,
    ResponseFor,
    SignerInfo,
    StatusNotice,
    Trace,
    format_date,
    format_timestamp,
    is_organ_id,
    make_document_id,
    parse_date,
    parse_timestamp,
)
from axis.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, load_xml
from axis.errors import AxisError, SchemaViolation, SetupError

__all__ = [
    "DEFAULT_LIMITS",
    "DS_NS",
    "NS",
    "ORGAN_ID_RE",
    "STATUS_CODES",
    "Attachment",
    "Business",
    "BusinessDocType",
    "Edoc",
    "Organ",
    "Package",
    "PackageKind",
    "ParseLimits",
    "ResponseFor",
    "SignerInfo",
    "StatusNotice",
    "Trace",
    "build_edoc",
    "build_status",
    "header",
    "is_organ_id",
    "format_date",
    "format_timestamp",
    "load_xml",
    "make_document_id",
    "package_kind",
    "parse_date",
    "parse_package",
    "parse_timestamp",
    "peek_sender",
    "to_bytes",
    "validate",
]

_NSMAP = {"e": NS}


# ---------------------------------------------------------------- small helpers


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def to_bytes(root: etree._Element) -> bytes:
    """Serialize a tree as UTF-8 with an XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# ---------------------------------------------------------------- structure and schemas


def header(root: etree._Element) -> etree._Element:
    """The ``edXMLHeader`` element, where the signature goes. Raises SchemaViolation if absent."""
    found = root.find("e:edXMLEnvelope/e:edXMLHeader", _NSMAP)
    if found is None:
        raise SchemaViolation("no edXMLEnvelope/edXMLHeader")
    return found


def package_kind(root: etree._Element) -> PackageKind:
    """Tell an edoc from a status by structure. Raises SchemaViolation if it is neither."""
    if root.tag != _q("edXML"):
        raise SchemaViolation(f"the root element must be {{{NS}}}edXML")
    message = header(root).find("e:MessageHeader", _NSMAP)
    if message is None:
        raise SchemaViolation("no edXMLHeader/MessageHeader")
    if message.find("e:StatusCode", _NSMAP) is not None:
        return PackageKind.STATUS
    if any(message.find(f"e:{name}", _NSMAP) is not None for name in ("To", "Subject")):
        return PackageKind.EDOC
    raise SchemaViolation("the MessageHeader is neither an edoc's nor a status's")


_SCHEMA_FILES = {PackageKind.EDOC: "edoc.xsd", PackageKind.STATUS: "status.xsd"}
_schema_cache = threading.local()  # lxml validators keep an error log: one set per thread
# Building a schema (parsing the XSDs and their includes) is not safe in two threads at once:
# libxml2 can fail to load an include then. Validating with a built one, per thread, is.
_schema_build_lock = threading.Lock()


def _schema_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "schemas", here.parents[1] / "schemas"):
        if (candidate / "common.xsd").is_file():
            return candidate
    raise SetupError("the edXML schemas (schemas/*.xsd) are not installed")


def _schema(kind: PackageKind) -> etree.XMLSchema:
    cache: dict[PackageKind, etree.XMLSchema] = _schema_cache.__dict__.setdefault("schemas", {})
    if kind not in cache:
        path = _schema_dir() / _SCHEMA_FILES[kind]
        try:
            with _schema_build_lock:
                cache[kind] = etree.XMLSchema(etree.parse(str(path)))
        except (etree.LxmlError, OSError) as exc:
            raise AxisError(f"cannot load {path}: {exc}") from exc
    return cache[kind]


def validate(root: etree._Element) -> PackageKind:
    """Validate against the XSD of the package's kind and return that kind.

    Raises SchemaViolation naming the first problem (line and message).
    """
    kind = package_kind(root)
    schema = _schema(kind)
    try:
        schema.assertValid(root)
    except etree.DocumentInvalid as exc:
        # The message is libxml2's first error with its line number.
        raise SchemaViolation(f"{kind} package: {exc}") from exc
    return kind


def peek_sender(root: etree._Element) -> str:
    """``From/OrganId`` of an unverified tree, only to find whose certificate to check.

    Raises SchemaViolation if it is missing or not an OrganId.
    """
    node = header(root).find("e:MessageHeader/e:From/e:OrganId", _NSMAP)
    value = node.text if node is not None else None
    if value is None or not is_organ_id(value):
        raise SchemaViolation("no valid MessageHeader/From/OrganId")
    return value


# ---------------------------------------------------------------- parse


def _find(parent: etree._Element, path: str) -> etree._Element:
    node = parent.find(path, _NSMAP)
    if node is None:
        raise SchemaViolation(f"missing {path.replace('e:', '')}")
    return node


def _req(parent: etree._Element, path: str) -> str:
    return _find(parent, path).text or ""


def _opt(parent: etree._Element, path: str) -> str | None:
    node = parent.find(path, _NSMAP)
    return None if node is None else node.text or ""


def _small_int(text: str, highest: int, what: str) -> int:
    if len(text) != 1 or not "0" <= text <= str(highest):
        raise SchemaViolation(f"{what} must be 0..{highest}, not {text!r}")
    return int(text)


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
    return ResponseFor(
        organ_id=_req(node, "e:OrganId"),
        code=_req(node, "e:Code"),
        promulgation_date=parse_date(_req(node, "e:PromulgationDate")),
        document_id=_req(node, "e:DocumentId"),
    )


def _parse_attachment(node: etree._Element) -> Attachment:
    encoded = "".join(_req(node, "e:ContentTransferEncoded").split())
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SchemaViolation("ContentTransferEncoded is not base64") from exc
    return Attachment(
        content_id=_req(node, "e:ContentId"),
        name=_req(node, "e:AttachmentName"),
        content_type=_req(node, "e:ContentType"),
        data=data,
        description=_opt(node, "e:Description"),
    )


def _parse_business(trace_list: etree._Element) -> Business:
    node = _find(trace_list, "e:Bussiness")
    doc_type = _small_int(_req(node, "e:BussinessDocType"), 3, "BussinessDocType")
    return Business(
        doc_type=BusinessDocType(doc_type),
        document_id=_opt(node, "e:DocumentId"),
        reason=_opt(node, "e:BussinessDocReason"),
    )


def _parse_traces(trace_list: etree._Element) -> tuple[Trace, ...]:
    return tuple(
        Trace(_req(node, "e:OrganId"), parse_timestamp(_req(node, "e:Timestamp")))
        for node in trace_list.iterfind("e:TraceHeader", _NSMAP)
    )


def _parse_signer(message: etree._Element) -> SignerInfo | None:
    node = message.find("e:SignerInfo", _NSMAP)
    if node is None:
        return None
    return SignerInfo(
        _req(node, "e:Competence"), _req(node, "e:Position"), _req(node, "e:FullName")
    )


def _parse_edoc(root: etree._Element) -> Edoc:
    head = header(root)
    message = _find(head, "e:MessageHeader")
    trace_list = _find(head, "e:TraceHeaderList")
    due = _opt(message, "e:DueDate")
    priority = _opt(message, "e:OtherInfo/e:Priority")
    steering = _opt(message, "e:SteeringType")
    return Edoc(
        sender=_parse_organ(_find(message, "e:From")),
        recipients=tuple(_parse_organ(n) for n in message.iterfind("e:To", _NSMAP)),
        document_id=_req(message, "e:DocumentId"),
        code_number=_req(message, "e:Code/e:CodeNumber"),
        code_notation=_req(message, "e:Code/e:CodeNotation"),
        place=_req(message, "e:PromulgationInfo/e:Place"),
        promulgation_date=parse_date(_req(message, "e:PromulgationInfo/e:PromulgationDate")),
        doc_type=_req(message, "e:DocumentType/e:Type"),
        type_detail=_req(message, "e:DocumentType/e:TypeDetail"),
        type_name=_opt(message, "e:DocumentType/e:TypeName"),
        subject=_req(message, "e:Subject"),
        content=_opt(message, "e:Content"),
        signer=_parse_signer(message),
        due_date=None if due is None else parse_date(due),
        priority=0 if priority is None else _small_int(priority, 4, "Priority"),
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
        raise SchemaViolation(f"unknown StatusCode {code!r}")
    return StatusNotice(
        sender=_parse_organ(_find(message, "e:From")),
        response_for=_parse_response_for(_find(message, "e:ResponseFor")),
        status_code=code,
        timestamp=parse_timestamp(_req(message, "e:Timestamp")),
        description=_opt(message, "e:Description"),
        staff_department=_opt(message, "e:StaffInfo/e:Department"),
        staff_name=_opt(message, "e:StaffInfo/e:Staff"),
    )


def parse_package(root: etree._Element) -> Package:
    """Typed values of a validated (and, in the hub, verified) package.

    Raises SchemaViolation on anything it cannot convert (a missing element, a bad date, bad
    base64). Unknown optional blocks (Appendixes, Paper, ...) are not carried over.
    """
    if package_kind(root) is PackageKind.STATUS:
        return _parse_status(root)
    return _parse_edoc(root)


# ---------------------------------------------------------------- build


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
        _sub(signer, "Competence", edoc.signer.competence)
        _sub(signer, "Position", edoc.signer.position)
        _sub(signer, "FullName", edoc.signer.full_name)
    # OtherInfo before DueDate, as the interop sample writes them (the schema takes both).
    _sub(_sub(message, "OtherInfo"), "Priority", str(edoc.priority))
    if edoc.due_date is not None:
        _sub(message, "DueDate", format_date(edoc.due_date))
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
        data = base64.b64encode(item.data).decode("ascii")
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
