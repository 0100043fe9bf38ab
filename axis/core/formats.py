"""The edXML package format of QCVN 102:2016 and its amendment SĐ1:2022, in one import.

Theory of operation: bytes from outside go through :func:`load_xml` (the hardened parser in
:mod:`axis.core.xmlsafe`), then :func:`validate` (:mod:`axis.core.edxml_schema`: the XSDs in
``schemas/``, which take children in any order, and the counts and ContentId rules they cannot
say), then, once the signature is verified elsewhere, :func:`parse_package`
(:mod:`axis.core.edxml_read`) turns the tree into an :class:`Edoc` or a :class:`StatusNotice`.
:func:`build_edoc` and :func:`build_status` (:mod:`axis.core.edxml_write`) go the other way,
in the standard's order; :func:`header` is where a signature goes.

Elements are found by namespace, never by prefix: agency software declares the edXML namespace
as the default on the root and as the prefix ``edXML`` further in. Values are taken exactly as
written (no trimming); the schemas refuse identifiers and dates with surrounding blanks.
"""

from __future__ import annotations

from axis.core.edxml_model import (
    DS_NS,
    NS,
    ORGAN_ID_2016_RE,
    ORGAN_ID_FORMS,
    ORGAN_ID_MAX,
    ORGAN_ID_QD20_RE,
    STATUS_CODES,
    Attachment,
    Business,
    BusinessDocType,
    DocumentChanges,
    DocumentIdParts,
    Edoc,
    Organ,
    OrganIdForm,
    Package,
    PackageKind,
    Receiver,
    Replacement,
    ResponseFor,
    SignerInfo,
    StatusNotice,
    Trace,
    format_date,
    format_timestamp,
    is_document_id,
    is_organ_id,
    make_document_id,
    organ_id_form,
    parse_date,
    parse_document_id,
    parse_timestamp,
)
from axis.core.edxml_read import parse_package, peek_sender
from axis.core.edxml_schema import CARDINALITIES, content_key, header, package_kind, validate
from axis.core.edxml_write import build_edoc, build_status, to_bytes
from axis.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, load_xml

__all__ = [
    "CARDINALITIES",
    "DEFAULT_LIMITS",
    "DS_NS",
    "NS",
    "ORGAN_ID_2016_RE",
    "ORGAN_ID_FORMS",
    "ORGAN_ID_MAX",
    "ORGAN_ID_QD20_RE",
    "STATUS_CODES",
    "Attachment",
    "Business",
    "BusinessDocType",
    "DocumentChanges",
    "DocumentIdParts",
    "Edoc",
    "Organ",
    "OrganIdForm",
    "Package",
    "PackageKind",
    "ParseLimits",
    "Receiver",
    "Replacement",
    "ResponseFor",
    "SignerInfo",
    "StatusNotice",
    "Trace",
    "build_edoc",
    "build_status",
    "content_key",
    "format_date",
    "format_timestamp",
    "header",
    "is_organ_id",
    "load_xml",
    "make_document_id",
    "organ_id_form",
    "package_kind",
    "parse_date",
    "is_document_id",
    "parse_document_id",
    "parse_package",
    "parse_timestamp",
    "peek_sender",
    "to_bytes",
    "validate",
]
