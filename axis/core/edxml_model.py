"""Typed values of an edXML package (QCVN 102:2016 and its amendment SĐ1:2022): constants, enums
and frozen dataclasses.

Pure values with no XML in sight; :mod:`axis.core.formats` reads and writes them. Import them
from :mod:`axis.core.formats`, which re-exports everything public here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import ClassVar

from axis.errors import SchemaViolation

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"

# The one definition of an OrganId: packages, certificates, the data folder and the commands
# all ask is_organ_id. Two generations: QCVN 102:2016's own (000.00.00.G22), and since
# SĐ1:2022 the electronic identifier of Decision 20/2020/QĐ-TTg: a level-1 code (a capital
# and two digits: G22, H41), then groups of digits and capitals after dots (H37.02.02), 35
# characters at most. ASCII only: Python's \d (and XSD's) would also take other scripts'
# digits; \Z, not $, which would take a trailing newline. schemas/common.xsd says the same.
ORGAN_ID_2016_RE: re.Pattern[str] = re.compile(r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}\Z")
ORGAN_ID_QD20_RE: re.Pattern[str] = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]+)*\Z")
ORGAN_ID_MAX = 35
ORGAN_ID_FORMS = "ddd.dd.dd.Xdd (QCVN 102:2016) or a Decision 20/2020 code such as H37.02.02"
_DATE_RE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")
_TIMESTAMP_RE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")

STATUS_CODES: Mapping[str, str] = MappingProxyType(
    {
        "01": "đã đến",
        "02": "từ chối tiếp nhận",
        "03": "đã tiếp nhận",
        "04": "phân công",
        "05": "đang xử lý",
        "06": "hoàn thành",
        "13": "yêu cầu lấy lại",
        "15": "đồng ý lấy lại / cập nhật",
        "16": "từ chối lấy lại / cập nhật",
    }
)


class OrganIdForm(StrEnum):
    """Which generation an OrganId is of."""

    QCVN_2016 = "2016"  # 000.00.00.G22
    DECISION_20 = "qd20"  # H37.02.02, and a level-1 code alone (G22)


def organ_id_form(value: object) -> OrganIdForm | None:
    """The generation of an OrganId, or None if ``value`` is not one."""
    if not isinstance(value, str) or len(value) > ORGAN_ID_MAX:
        return None
    if ORGAN_ID_2016_RE.match(value):
        return OrganIdForm.QCVN_2016
    if ORGAN_ID_QD20_RE.match(value):
        return OrganIdForm.DECISION_20
    return None


def is_organ_id(value: object) -> bool:
    """Whether ``value`` is an OrganId of either generation (ASCII, no blanks, ≤ 35)."""
    return organ_id_form(value) is not None


class PackageKind(StrEnum):
    """The two kinds of edXML package."""

    EDOC = "edoc"
    STATUS = "status"


class BusinessDocType(IntEnum):
    """``BussinessDocType``: what an edoc does to the document it names."""

    NEW = 0
    RECALL = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True)
class Organ:
    """An agency as written in ``From`` or ``To``."""

    organ_id: str
    organ_name: str
    organization_in_charge: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True)
class SignerInfo:
    """Who signed the paper document (not the XML signature). Some software writes only the
    name."""

    full_name: str
    competence: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class Trace:
    """One ``TraceHeader``: an agency the package passed, and when (naive local time)."""

    organ_id: str
    timestamp: datetime


@dataclass(frozen=True)
class Receiver:
    """One ``BussinessDocumentInfo/ReceiverList/Receiver``: an agency an update concerns.
    ``receiver_type`` is kept as written: the sources we could read do not settle what each
    value means (the SDK's example writes 0 and 1)."""

    organ_id: str
    receiver_type: str | None = None


@dataclass(frozen=True)
class DocumentChanges:
    """``BussinessDocumentInfo`` (item 2.2.3 of the standard): what an update changes.
    ``document_info``: the document's information changed; ``document_receiver``: who
    receives it changed; ``receivers``: who gets the update (all of the earlier document's
    recipients when there are none)."""

    document_info: bool | None = None
    document_receiver: bool | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True)
class Replacement:
    """One ``ReplacementInfoList/ReplacementInfo``: a document this one replaces, and for whom
    (all of its recipients when ``organ_ids`` is empty)."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Business:
    """The ``Bussiness`` block: new, recall, update or replace. ``document_id`` is
    ``Bussiness/DocumentId`` as written (a new document's names nothing)."""

    doc_type: BusinessDocType = BusinessDocType.NEW
    document_id: str | None = None
    reason: str | None = None
    changes: DocumentChanges | None = None
    replacements: tuple[Replacement, ...] = ()


@dataclass(frozen=True)
class DocumentIdParts:
    """A DocumentId read: ``OrganId,yyyy/MM/dd,number/notation``."""

    organ_id: str
    day: date
    number: str
    notation: str


@dataclass(frozen=True)
class Attachment:
    """One attached file, decoded."""

    content_id: str
    name: str
    content_type: str
    data: bytes
    description: str | None = None


@dataclass(frozen=True)
class ResponseFor:
    """The document a package answers."""

    organ_id: str
    code: str
    promulgation_date: date
    document_id: str


@dataclass(frozen=True)
class Edoc:
    """An electronic document package."""

    sender: Organ
    recipients: tuple[Organ, ...]
    document_id: str
    code_number: str
    code_notation: str
    place: str
    promulgation_date: date
    doc_type: str
    type_detail: str
    subject: str
    type_name: str | None = None
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: date | None = None
    priority: int = 0
    steering_type: int | None = None
    to_places: tuple[str, ...] = ()
    response_for: tuple[ResponseFor, ...] = ()
    traces: tuple[Trace, ...] = ()
    business: Business = Business()
    attachments: tuple[Attachment, ...] = ()
    kind: ClassVar[PackageKind] = PackageKind.EDOC


@dataclass(frozen=True)
class StatusNotice:
    """A status package: the recipient's business status of an edoc."""

    sender: Organ
    response_for: ResponseFor
    status_code: str
    timestamp: datetime
    description: str | None = None
    staff_department: str | None = None
    staff_name: str | None = None
    kind: ClassVar[PackageKind] = PackageKind.STATUS


Package = Edoc | StatusNotice


# ---------------------------------------------------------------- dates


def format_date(day: date) -> str:
    """``yyyy/MM/dd`` (zero-padded, whatever the platform's strftime does with small years)."""
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def format_timestamp(moment: datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss`` of the wall-clock fields; sub-seconds and zone are not written."""
    return f"{format_date(moment.date())} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"


def parse_date(text: str, where: str = "the date") -> date:
    """Read ``yyyy/MM/dd``; ``where`` names the element in the refusal.

    Raises SchemaViolation if it is not a real date in that form."""
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise SchemaViolation(
            f"{where}: {text!r} is not a date in the form yyyy/MM/dd (QCVN 102:2016),"
            " e.g. 2020/10/30"
        )
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise SchemaViolation(f"{where}: {text!r} is no day of the calendar ({exc})") from exc


def parse_timestamp(text: str, where: str = "the timestamp") -> datetime:
    """Read ``yyyy/MM/dd HH:mm:ss`` as a naive datetime. Raises SchemaViolation if invalid."""
    match = _TIMESTAMP_RE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise SchemaViolation(
            f"{where}: {text!r} is not a time in the form yyyy/MM/dd HH:mm:ss,"
            " e.g. 2020/10/30 08:15:00"
        ) from exc


def make_document_id(organ_id: str, day: date, number: str, notation: str) -> str:
    """The sender's DocumentId: ``"OrganId,yyyy/MM/dd,number/notation"``."""
    return f"{organ_id},{format_date(day)},{number}/{notation}"


def parse_document_id(text: str, where: str) -> DocumentIdParts:
    """Read a DocumentId, ``OrganId,yyyy/MM/dd,number/notation``; ``where`` names the element.

    Raises:
        SchemaViolation: it has not those three parts, or its OrganId or date is not one.
    """
    form = "OrganId,yyyy/MM/dd,number/notation"
    parts = text.split(",")
    if len(parts) != 3:
        raise SchemaViolation(f"{where}: {text!r} is not a DocumentId ({form})")
    organ_id, day_text, code = parts
    if not is_organ_id(organ_id):
        raise SchemaViolation(
            f"{where}: {text!r} begins with {organ_id!r}, which is not an OrganId"
            f" ({ORGAN_ID_FORMS}); a DocumentId is {form}"
        )
    day = parse_date(day_text, f"{where} {text!r}")
    number, slash, notation = code.partition("/")
    if not (number and slash and notation):
        raise SchemaViolation(
            f"{where}: {text!r} ends in {code!r}, not number/notation; a DocumentId is {form}"
        )
    return DocumentIdParts(organ_id, day, number, notation)


def is_document_id(text: str | None) -> bool:
    """Whether ``text`` is a DocumentId of the standard's form (:func:`parse_document_id`)."""
    try:
        parse_document_id(text or "", "DocumentId")
    except SchemaViolation:
        return False
    return True
