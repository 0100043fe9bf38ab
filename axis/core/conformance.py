"""What the real axis delivers that QCVN 102:2016 would refuse: the deviations a face may
tolerate, found on a parsed tree, and a conforming copy to read it through.

Theory of operation. The national axis delivers packages the standard refuses (PROTOCOL.md,
its gateway section): a UUID ``DocumentId``, ``SignerInfo`` without ``Competence``, no
signature at all, a ``TraceHeader/OrganId`` that says ``null``. The national axis's face of
Axis takes them, as the real axis does, and records each deviation by the rule it breaks
(:class:`Rule`); in strict mode it refuses them, naming the rule. Everything else about the
package stays as strict as on the node API: an address that is no OrganId is refused.

:func:`inspect` finds the deviations on a tree, and :func:`conforming` gives a copy in which
each is replaced by a value the standard takes (the DocumentId built from the package's own
From, date and number; ``Competence`` ``-``; the trace's OrganId its From), so that the one
strict reader (:mod:`axis.core.edxml_read`) reads it; :func:`restore` puts the values as
written back on what it read. The stored bytes are never touched.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from lxml import etree

from axis.core.edxml_model import (
    DS_NS,
    NS,
    Edoc,
    Package,
    SignerInfo,
    StatusNotice,
    is_document_id,
    is_organ_id,
)
from axis.core.edxml_schema import PLACEHOLDERS, header

_NSMAP = {"e": NS}


class Rule(StrEnum):
    """A rule of QCVN 102:2016 that field packages break and the real axis does not enforce."""

    UNSIGNED = "unsigned"
    DOCUMENT_ID = "document-id"
    COMPETENCE = "signer-competence"
    TRACE_ORGAN_ID = "trace-organ-id"


#: What each rule requires, as a refusal or a record names it.
RULES: Mapping[Rule, str] = MappingProxyType(
    {
        Rule.UNSIGNED: "an edXML package carries an XMLDSig signature of its sender",
        Rule.DOCUMENT_ID: "a DocumentId is OrganId,yyyy/MM/dd,number/notation",
        Rule.COMPETENCE: "SignerInfo names the signer's Competence",
        Rule.TRACE_ORGAN_ID: "TraceHeader/OrganId is an OrganId",
    }
)


@dataclass(frozen=True)
class Deviation:
    """One deviation found: the rule, and what the package has instead."""

    rule: Rule
    found: str

    def __str__(self) -> str:
        return f"{self.rule} ({self.found})"


def inspect(root: etree._Element) -> tuple[Deviation, ...]:
    """The deviations of a parsed (unverified) package, in a fixed order. Reads only."""
    head = header(root)
    found: list[Deviation] = []
    if head.find(f"{{{DS_NS}}}Signature") is None:
        placeholder = next((c for c in head if c.tag in PLACEHOLDERS), None)
        what = (
            "none"
            if placeholder is None
            else f"a placeholder <{etree.QName(placeholder).localname}>"
        )
        found.append(Deviation(Rule.UNSIGNED, what))
    for node, _ in _document_ids(head):
        if not is_document_id(node.text):
            found.append(Deviation(Rule.DOCUMENT_ID, repr(node.text)))
    signer = head.find("e:MessageHeader/e:SignerInfo", _NSMAP)
    if signer is not None and not (signer.findtext("e:Competence", None, _NSMAP) or "").strip():
        found.append(Deviation(Rule.COMPETENCE, "missing"))
    for node in head.iterfind("e:TraceHeaderList/e:TraceHeader/e:OrganId", _NSMAP):
        if not is_organ_id(node.text):
            found.append(Deviation(Rule.TRACE_ORGAN_ID, repr(node.text)))
            break
    return tuple(found)


def conforming(root: etree._Element, deviations: tuple[Deviation, ...]) -> etree._Element:
    """``root`` itself when nothing but its signature deviates, else a copy with each
    deviation replaced (see the module doc). A placeholder signature is left for the
    caller, who reads an unsigned package without the verifier."""
    rules = {d.rule for d in deviations}
    if not rules - {Rule.UNSIGNED}:
        return _without_placeholder(root) if Rule.UNSIGNED in rules else root
    fixed = _without_placeholder(copy.deepcopy(root))
    head = header(fixed)
    sender = head.findtext("e:MessageHeader/e:From/e:OrganId", "", _NSMAP)
    if Rule.DOCUMENT_ID in rules:
        for node, built in _document_ids(head):
            if not is_document_id(node.text):
                node.text = built
    if Rule.COMPETENCE in rules:
        signer = head.find("e:MessageHeader/e:SignerInfo", _NSMAP)
        if signer is not None:
            for old in signer.findall("e:Competence", _NSMAP):
                signer.remove(old)
            etree.SubElement(signer, f"{{{NS}}}Competence").text = "-"
    if Rule.TRACE_ORGAN_ID in rules:
        for node in head.iterfind("e:TraceHeaderList/e:TraceHeader/e:OrganId", _NSMAP):
            if not is_organ_id(node.text):
                node.text = sender
    return fixed


def restore(package: Package, root: etree._Element, deviations: tuple[Deviation, ...]) -> Package:
    """What :func:`conforming` replaced, put back as the package wrote it."""
    rules = {d.rule for d in deviations}
    head = header(root)
    if isinstance(package, StatusNotice):
        if Rule.DOCUMENT_ID in rules:
            written = head.findtext("e:MessageHeader/e:ResponseFor/e:DocumentId", "", _NSMAP)
            response = dataclasses.replace(package.response_for, document_id=written)
            package = dataclasses.replace(package, response_for=response)
        return package
    edoc: Edoc = package
    if Rule.DOCUMENT_ID in rules:
        written = head.findtext("e:MessageHeader/e:DocumentId", "", _NSMAP)
        edoc = dataclasses.replace(edoc, document_id=written)
    if Rule.COMPETENCE in rules and edoc.signer is not None:
        signer: SignerInfo = dataclasses.replace(edoc.signer, competence=None)
        edoc = dataclasses.replace(edoc, signer=signer)
    if Rule.TRACE_ORGAN_ID in rules:
        written_ids = [
            n.text or "" for n in head.iterfind("e:TraceHeaderList/e:TraceHeader/e:OrganId", _NSMAP)
        ]
        traces = tuple(
            dataclasses.replace(t, organ_id=w)
            for t, w in zip(edoc.traces, written_ids, strict=False)
        )
        edoc = dataclasses.replace(edoc, traces=traces)
    return edoc


def _document_ids(head: etree._Element) -> list[tuple[etree._Element, str]]:
    """The DocumentIds a package stands on (an edoc's own, the one a status answers), each
    with the conforming one its own fields make."""
    message = head.find("e:MessageHeader", _NSMAP)
    if message is None:
        return []
    found = []
    own = message.find("e:DocumentId", _NSMAP)
    if own is not None and message.find("e:StatusCode", _NSMAP) is None:
        found.append((own, _built(message, message.findtext("e:From/e:OrganId", "", _NSMAP))))
    answered = message.find("e:ResponseFor", _NSMAP)
    if message.find("e:StatusCode", _NSMAP) is not None and answered is not None:
        node = answered.find("e:DocumentId", _NSMAP)
        if node is not None:
            found.append((node, _built_answered(answered)))
    return found


def _built(message: etree._Element, organ_id: str) -> str:
    date = message.findtext("e:PromulgationInfo/e:PromulgationDate", "", _NSMAP)
    number = message.findtext("e:Code/e:CodeNumber", "", _NSMAP)
    notation = message.findtext("e:Code/e:CodeNotation", "", _NSMAP)
    return f"{organ_id},{date},{number}/{notation}"


def _built_answered(answered: etree._Element) -> str:
    organ_id = answered.findtext("e:OrganId", "", _NSMAP)
    date = answered.findtext("e:PromulgationDate", "", _NSMAP)
    code = answered.findtext("e:Code", "", _NSMAP)
    return f"{organ_id},{date},{code}"


def _without_placeholder(root: etree._Element) -> etree._Element:
    head = header(root)
    for child in list(head):
        if child.tag in PLACEHOLDERS:
            head.remove(child)
    return root
