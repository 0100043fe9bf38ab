"""Typed values of an edXML package (QCVN 102:2016): constants, enums and frozen dataclasses.

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
# all ask is_organ_id. ASCII digits only: Python's \d (and XSD's) would also take other
# scripts' digits; \Z, not $, which would take a trailing newline.
ORGAN_ID_RE: re.Pattern[str] = re.compile(r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}\Z")
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


def is_organ_id(value: str) -> bool:
    """Whether ``value`` is an OrganId (``ddd.dd.dd.Xdd``, ASCII digits, no blanks)."""
    return isinstance(value, str) and ORGAN_ID_RE.match(value) is not None


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
    """Who signed the paper document (not the XML signature)."""

    competence: str
    position: str
    full_name: str


@dataclass(frozen=True)
class Trace:
    """One ``TraceHeader``: an agency the package passed, and when (naive local time)."""

    organ_id: str
    timestamp: datetime


@dataclass(frozen=True)
class Business:
    """The ``Bussiness`` block: new, recall, update or replace."""

    doc_type: BusinessDocType = BusinessDocType.NEW
    document_id: str | None = None
    reason: str | None = None


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


def parse_date(text: str) -> date:
    """Read ``yyyy/MM/dd``. Raises SchemaViolation if it is not a real date."""
    match = _DATE_RE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day = (int(part) for part in match.groups())
        return date(year, month, day)
    except ValueError as exc:
        raise SchemaViolation(f"not a yyyy/MM/dd date: {text!r}") from exc


def parse_timestamp(text: str) -> datetime:
    """Read ``yyyy/MM/dd HH:mm:ss`` as a naive datetime. Raises SchemaViolation if invalid."""
    match = _TIMESTAMP_RE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise SchemaViolation(f"not a yyyy/MM/dd HH:mm:ss timestamp: {text!r}") from exc


def make_document_id(organ_id: str, day: date, number: str, notation: str) -> str:
    """The sender's DocumentId: ``"OrganId,yyyy/MM/dd,number/notation"``."""
    return f"{organ_id},{format_date(day)},{number}/{notation}"
