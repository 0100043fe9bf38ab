"""The field's dialects of edXML: how agency software in Vietnam lays out the same package.

Receivers read children by name, so senders disagree on their order, and on a few habits
around it. Axis writes the standard's layout (:mod:`axis.core.edxml_write`); a simulated
agency, or a vendor testing its parser, may write one of the field's instead, so that what
the hub takes in a simulation is what real software sends. A :class:`Dialect` changes an
unsigned tree (:meth:`Dialect.shape`: child order, attributes, line breaks) and the signed
bytes (:meth:`Dialect.finish`: line ends, byte order mark), and says how attachments are
named (:meth:`Dialect.content_id`). The content and the signature's meaning never change:
whatever a dialect writes reads back as the same package.

The dialects, from the samples in ``samples/field/`` and the SDKs' builders:

- ``standard``: QCVN 102:2016's order, LF line ends, ``cid:1``… (what Axis writes);
- ``vnpt``: VNPT's EdXML102 Java library (the national axis SDK): OrganizationInCharge before
  OrganName, DocumentId right after To, DocumentType as Type, TypeDetail, TypeName, SignerInfo
  with FullName last, Bussiness before TraceHeader, Reference as ContentId, ContentType,
  Description, AttachmentName; CRLF line ends;
- ``gateway``: a provincial gateway built on that library: its order, ``cid:`` and a UUID for
  each attachment, LF;
- ``dotnet``: the .NET SDK and the builders ported from it: OrganName before
  OrganizationInCharge, DocumentId last in MessageHeader, DocumentType as Type, TypeName,
  TypeDetail, TraceHeaderList with the SOAP attributes ``id``, ``version``,
  ``mustUnderstand``, ``actor`` and TraceHeader before Bussiness, Reference as Description,
  AttachmentName, ContentType, ContentId with ``xlink:`` attributes, bare ContentIds, CRLF
  and a UTF-8 byte order mark.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from lxml import etree

from axis.core.edxml_model import NS

XLINK = "http://www.w3.org/1999/xlink"
BOM = b"\xef\xbb\xbf"


class ContentIds(StrEnum):
    """How a dialect names attachments (Reference and Attachment share the name)."""

    NUMBERED = "cid:1, cid:2, …"
    UUID = "cid: and a UUID"
    BARE = "a bare number"


@dataclass(frozen=True)
class Dialect:
    """One layout of edXML the field writes (see the module doc).

    ``orders`` maps a parent's local name (``status:`` before it for a status package's
    MessageHeader and ResponseFor) to the order of its children; children it does not list
    follow, in the order they had."""

    name: str
    orders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    trace_list_attributes: Mapping[str, str] = field(default_factory=dict)
    xlink: bool = False
    content_ids: ContentIds = ContentIds.NUMBERED
    crlf: bool = False
    bom: bool = False
    indent: bool = True

    def content_id(self, n: int, rng: random.Random | None = None) -> str:
        """The name of the ``n``-th attachment (from 1)."""
        if self.content_ids is ContentIds.UUID:
            return f"cid:{uuid.UUID(int=(rng or random).getrandbits(128), version=4)}"
        if self.content_ids is ContentIds.BARE:
            return str(n)
        return f"cid:{n}"

    def shape(self, root: etree._Element) -> etree._Element:
        """The unsigned tree laid out as this dialect does, in place (and returned)."""
        status = root.find(f".//{{{NS}}}StatusCode") is not None
        for element in root.iter(f"{{{NS}}}*"):
            name = element.tag[_NS_CHARS:]  # every tag here is {NS}name
            order = self.orders.get(f"status:{name}") if status else None
            order = order or self.orders.get(name)
            if order:
                _reorder(element, order)
            if name == "TraceHeaderList":
                for attribute, value in self.trace_list_attributes.items():
                    element.set(attribute, value)
            elif name == "Reference" and self.xlink:
                content_id = element.findtext(f"{{{NS}}}ContentId") or ""
                element.set(f"{{{XLINK}}}type", "simple")
                element.set(f"{{{XLINK}}}href", content_id)
        if self.xlink:  # declared once, as xlink: (else lxml names it ns0 on each Reference)
            etree.cleanup_namespaces(root, top_nsmap={"xlink": XLINK})
        if self.indent:
            etree.indent(root, space="  ")
        return root

    def finish(self, signed: bytes) -> bytes:
        """The signed bytes as this dialect sends them. Line ends and a byte order mark change
        no parsed value (XML reads CRLF as LF), so the signature still verifies."""
        if self.crlf:
            signed = signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self.bom and not signed.startswith(BOM):
            signed = BOM + signed
        return signed


_NS_CHARS = len(f"{{{NS}}}")


@functools.cache
def _ranks(order: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(order)}


def _reorder(parent: etree._Element, order: tuple[str, ...]) -> None:
    # Each signed package is shaped before signing (five a document): the ranks are built
    # once an order, and a child's local name is read off its tag ("{ns}name"), not through
    # an etree.QName each.
    rank = _ranks(order)
    last = len(order)
    children = [c for c in parent if isinstance(c.tag, str)]
    ranked = sorted(
        enumerate(children),
        key=lambda item: (rank.get(item[1].tag.rpartition("}")[2], last), item[0]),
    )
    for child in children:
        parent.remove(child)
    for _, child in ranked:
        parent.append(child)


_ORGAN_VNPT = (
    "OrganId", "OrganizationInCharge", "OrganName", "OrganAdd", "Email", "Telephone", "Fax",
    "Website",
)  # fmt: skip
_ORGAN_DOTNET = (
    "OrganId", "OrganName", "OrganizationInCharge", "OrganAdd", "Email", "Telephone", "Fax",
    "Website",
)  # fmt: skip
_VNPT_ORDERS = {
    "From": _ORGAN_VNPT,
    "To": _ORGAN_VNPT,
    "MessageHeader": (
        "From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject",
        "Content", "SignerInfo", "DueDate", "OtherInfo", "ResponseFor", "SteeringType",
        "ToPlaces",
    ),
    "status:MessageHeader": (
        "From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp",
    ),
    "ResponseFor": ("OrganId", "Code", "DocumentId", "PromulgationDate"),
    "DocumentType": ("Type", "TypeDetail", "TypeName"),
    "SignerInfo": ("Competence", "Position", "FullName"),
    "TraceHeaderList": ("Bussiness", "TraceHeader"),
    "Reference": ("ContentId", "ContentType", "Description", "AttachmentName"),
    "Attachment": ("ContentId", "AttachmentName", "Description", "ContentType"),
}  # fmt: skip
_DOTNET_ORDERS = {
    "From": _ORGAN_DOTNET,
    "To": _ORGAN_DOTNET,
    "MessageHeader": (
        "From", "To", "Code", "PromulgationInfo", "DocumentType", "Subject", "Content",
        "SignerInfo", "DueDate", "ToPlaces", "OtherInfo", "SteeringType", "ResponseFor",
        "DocumentId",
    ),
    "status:MessageHeader": (
        "From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp",
    ),
    "ResponseFor": ("OrganId", "Code", "PromulgationDate", "DocumentId"),
    "DocumentType": ("Type", "TypeName", "TypeDetail"),
    "TraceHeaderList": ("TraceHeader", "Bussiness"),
    "Reference": ("Description", "AttachmentName", "ContentType", "ContentId"),
}  # fmt: skip

STANDARD = Dialect("standard", indent=False)
DIALECTS: Mapping[str, Dialect] = MappingProxyType(
    {
        d.name: d
        for d in (
            STANDARD,
            Dialect("vnpt", _VNPT_ORDERS, crlf=True),
            Dialect("gateway", _VNPT_ORDERS, content_ids=ContentIds.UUID),
            Dialect(
                "dotnet",
                _DOTNET_ORDERS,
                trace_list_attributes={
                    "id": "TraceHeaderList",
                    "version": "1.0",
                    "mustUnderstand": "1",
                    "actor": "http://schemas.xmlsoap.org/soap/actor/next",
                },  # fmt: skip
                xlink=True,
                content_ids=ContentIds.BARE,
                crlf=True,
                bom=True,
            ),
        )
    }
)


def parse_mix(text: str) -> dict[str, float]:
    """``standard:2,vnpt:1,dotnet:1`` (a weight each; ``vnpt`` alone means weight 1) as
    {dialect: weight}.

    Raises:
        ValueError: an unknown dialect, a weight that is not a positive number, or nothing.
    """
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        if name not in DIALECTS:
            raise ValueError(f"no dialect {name!r}; there are {', '.join(DIALECTS)}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name} is not a number: {weight!r}") from None
        if not value > 0:
            raise ValueError(f"the weight of {name} must be positive: {weight!r}")
        mix[name] = value
    if not mix:
        raise ValueError("name at least one dialect")
    return mix
