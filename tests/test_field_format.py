"""edXML as the field writes it, at the format level (no signature, no hub): any order of
children, the SDKs' additions, empty optional elements, both generations of OrganId, and the
refusals that name what is wrong. The samples are ../shared/samples/field/ (SOURCES.md there;
a copy in tests/data/samples/field for a clone without it).

The packages go through signing and the hub in tests/test_field_samples.py."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from axis.core import formats as f
from axis.errors import InvalidSignature, SchemaViolation
from tests.helpers import FIELD

NS = f"{{{f.NS}}}"
EDOC = "vnpt-sdk-output/J1_new.edxml"
STATUS = "vnpt-sdk-output/J5_status_01.edxml"
ANSWERING_EDOC = "vnpt-sdk-output/J1r_new_responsefor.edxml"

# The children each element must have, by package kind (the rest are optional).
REQUIRED = {
    "From": ("OrganId", "OrganName"),
    "To": ("OrganId", "OrganName"),
    "ResponseFor": ("OrganId", "Code", "PromulgationDate", "DocumentId"),
    "DocumentType": ("Type", "TypeDetail"),
    "OtherInfo": ("Priority",),
    "Bussiness": ("BussinessDocType",),
    "Reference": ("ContentId", "ContentType", "AttachmentName"),
    "Attachment": ("ContentId", "AttachmentName", "ContentType", "ContentTransferEncoded"),
}
EDOC_MESSAGE = ("From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject")
STATUS_MESSAGE = ("From", "ResponseFor", "StatusCode", "Timestamp")
PARENTS = (*REQUIRED, "MessageHeader", "TraceHeaderList")


def tree(name: str) -> etree._Element:
    root = f.load_xml((FIELD / name).read_bytes())
    for placeholder in list(root.iter(f"{NS}Signature")):
        parent = placeholder.getparent()
        assert parent is not None
        parent.remove(placeholder)
    return root


def read(root: etree._Element) -> f.Package:
    f.validate(root)
    return f.parse_package(root)


def unordered(package: f.Package) -> f.Package:
    """A package with its repeated parts sorted: their order carries no meaning."""
    if isinstance(package, f.StatusNotice):
        return package
    return dataclasses.replace(
        package,
        recipients=tuple(sorted(package.recipients, key=repr)),
        response_for=tuple(sorted(package.response_for, key=repr)),
        traces=tuple(sorted(package.traces, key=repr)),
        to_places=tuple(sorted(package.to_places)),
        attachments=tuple(sorted(package.attachments, key=lambda a: a.content_id)),
    )


def required_of(parent: str, kind: f.PackageKind) -> tuple[str, ...]:
    if parent == "MessageHeader":
        return EDOC_MESSAGE if kind is f.PackageKind.EDOC else STATUS_MESSAGE
    if parent == "TraceHeaderList":
        return ("Bussiness",) if kind is f.PackageKind.EDOC else ()
    return REQUIRED[parent]


SAMPLES_AND_PARENTS = [
    (sample, parent)
    for sample in (EDOC, STATUS, ANSWERING_EDOC)
    for parent in PARENTS
    if tree(sample).find(f".//{NS}{parent}") is not None
] if FIELD.is_dir() else []  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES_AND_PARENTS) if SAMPLES_AND_PARENTS else st.nothing(), st.data())
def test_any_order_of_the_children_reads_the_same(
    case: tuple[str, str], data: st.DataObject
) -> None:
    sample, parent = case
    expected = read(tree(sample))
    root = tree(sample)
    for node in root.iter(f"{NS}{parent}"):
        children = list(node)
        for child in children:
            node.remove(child)
        for child in data.draw(st.permutations(children)):
            node.append(child)
    assert unordered(read(root)) == unordered(expected)


@pytest.mark.parametrize(("sample", "parent"), SAMPLES_AND_PARENTS)
def test_a_missing_required_child_is_refused_by_its_name(sample: str, parent: str) -> None:
    kind = f.package_kind(tree(sample))
    for child in required_of(parent, kind):
        root = tree(sample)
        node = root.find(f".//{NS}{parent}")
        assert node is not None
        for found in node.findall(f"{NS}{child}"):
            node.remove(found)
        with pytest.raises(SchemaViolation, match=child):
            read(root)


@pytest.mark.parametrize(("sample", "parent"), SAMPLES_AND_PARENTS)
def test_an_unknown_child_is_refused_by_its_name(sample: str, parent: str) -> None:
    root = tree(sample)
    node = root.find(f".//{NS}{parent}")
    assert node is not None
    etree.SubElement(node, f"{NS}Surprise").text = "1"
    with pytest.raises(SchemaViolation, match="Surprise"):
        read(root)


@pytest.mark.parametrize(
    ("parent", "child"),
    [("MessageHeader", "From"), ("MessageHeader", "DocumentId"), ("TraceHeaderList", "Bussiness")],
)
def test_a_child_the_standard_wants_once_is_refused_twice(parent: str, child: str) -> None:
    root = tree(EDOC)
    node = root.find(f".//{NS}{parent}/{NS}{child}")
    assert node is not None
    node.addnext(copy.deepcopy(node))
    with pytest.raises(SchemaViolation, match=f"{parent}: {child} appears 2 times"):
        read(root)


def test_the_sdks_additions_are_taken_and_ignored() -> None:
    expected = read(tree(EDOC))
    root = tree(EDOC)
    message = root.find(f".//{NS}MessageHeader")
    other = root.find(f".//{NS}OtherInfo")
    trace_list = root.find(f".//{NS}TraceHeaderList")
    reference = root.find(f".//{NS}Reference")
    attachment = root.find(f".//{NS}Attachment")
    assert None not in (message, other, trace_list, reference, attachment)
    assert message is not None and other is not None and trace_list is not None
    assert reference is not None and attachment is not None
    task = etree.SubElement(message, f"{NS}ResponseForTask")
    etree.SubElement(task, f"{NS}TaskCode").text = "NV-01"
    etree.SubElement(message, f"{NS}ApplicationType").text = "QLVB"
    etree.SubElement(other, f"{NS}ReplyFors").text = "12/BTC-VP"
    etree.SubElement(other, f"{NS}ReferenceCodes").text = "x"
    for node in (reference, attachment):
        etree.SubElement(node, f"{NS}FieldName").text = "file"
        etree.SubElement(node, f"{NS}MimeType").text = "application/pdf"
    trace_list.attrib.update(
        {"id": "9f1c2b3a", "version": "1.0", "mustUnderstand": "1", "actor": "next"}
    )
    reference.set("{http://www.w3.org/1999/xlink}href", "cid:1")
    reference.set("{http://www.w3.org/1999/xlink}type", "simple")
    assert read(root) == expected


def test_empty_optional_elements_count_as_absent() -> None:
    root = tree(EDOC)
    for name in ("DueDate", "SteeringType", "Content"):
        node = root.find(f".//{NS}{name}")
        assert node is not None
        node.text = None
    edoc = read(root)
    assert isinstance(edoc, f.Edoc)
    assert (edoc.due_date, edoc.steering_type, edoc.content) == (None, None, None)


def test_signer_info_may_hold_only_a_name() -> None:
    root = tree(EDOC)
    signer = root.find(f".//{NS}SignerInfo")
    assert signer is not None
    for name in ("Competence", "Position"):
        found = signer.find(f"{NS}{name}")
        assert found is not None
        signer.remove(found)
    edoc = read(root)
    assert isinstance(edoc, f.Edoc) and edoc.signer is not None
    assert (edoc.signer.competence, edoc.signer.position) == (None, None)


@pytest.mark.parametrize("form", ["cid:{}", "{}"], ids=["cid", "bare"])
def test_a_content_id_may_be_a_uuid_with_or_without_cid(form: str) -> None:
    root = tree(EDOC)
    uuid = "3f1c9a2e-8b7d-4c6e-9f0a-1b2c3d4e5f60"
    ids = [n for n in root.iter(f"{NS}ContentId") if n.text == "cid:1"]
    assert len(ids) == 2
    ids[0].text = form.format(uuid)  # the Reference's
    ids[1].text = f"cid:{uuid}"  # the Attachment's: they match without the cid:
    read(root)


def test_a_reference_without_its_attachment_is_refused_naming_it() -> None:
    root = tree(EDOC)
    reference = next(n for n in root.iter(f"{NS}ContentId") if n.text == "cid:2")
    reference.text = "cid:99"
    with pytest.raises(SchemaViolation, match="ContentId '(2|99)'"):
        read(root)


@pytest.mark.parametrize("placeholder", ["Signature", "DigitalSignature"])
def test_a_placeholder_signature_is_refused_as_one(placeholder: str) -> None:
    root = tree(EDOC)
    head = f.header(root)
    etree.SubElement(head, f"{NS}{placeholder}")
    with pytest.raises(InvalidSignature, match=f"placeholder <{placeholder}>.*XMLDSig"):
        read(root)


def test_the_sdks_own_placeholder_sample_is_refused_as_one() -> None:
    root = f.load_xml((FIELD / "vnpt-sdk-output/J1_new_placeholder.edxml").read_bytes())
    with pytest.raises(InvalidSignature, match="placeholder <Signature>"):
        f.validate(root)


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("DocumentId", "000.00.00.G09-2026/11/29-12/BTC-VP", "is not a DocumentId"),
        ("DocumentId", "G09.01,2026/13/29,12/BTC-VP", "no day of the calendar"),
        ("DocumentId", "G09.01,29/11/2026,12/BTC-VP", "not a date in the form yyyy/MM/dd"),
        ("DocumentId", "000.00.00.G09,2026/11/29,12", "not number/notation"),
        ("DocumentId", "28.22.H17,2026/11/29,12/X", "which is not an OrganId"),
    ],
)
def test_a_malformed_document_id_is_refused_naming_it(where: str, value: str, words: str) -> None:
    root = tree(EDOC)
    node = root.find(f".//{NS}MessageHeader/{NS}{where}")
    assert node is not None
    node.text = value
    with pytest.raises(SchemaViolation, match=f"MessageHeader/DocumentId.*{words}"):
        read(root)


def test_a_new_documents_bussiness_document_id_is_kept_as_written() -> None:
    """A new document names nothing there; the SDK's own example leaves an impossible date."""
    root = tree(EDOC)
    business = root.find(f".//{NS}Bussiness")
    assert business is not None
    business.insert(0, etree.Element(f"{NS}DocumentId"))
    business[0].text = "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"
    edoc = read(root)
    assert isinstance(edoc, f.Edoc) and edoc.business.document_id == business[0].text


@pytest.mark.parametrize(
    "code", ["G09", "H37.02.02", "G09.01.1A.B7", "H41" + ".0" * 16], ids=lambda c: f"{len(c)}"
)
def test_a_decision_20_code_stands_wherever_an_organ_id_does(code: str) -> None:
    assert len(code) <= 35
    old = "000.00.00.G09"
    data = (FIELD / EDOC).read_bytes().replace(old.encode(), code.encode())
    root = f.load_xml(data)
    edoc = read(root)
    assert isinstance(edoc, f.Edoc)
    assert edoc.sender.organ_id == code and edoc.document_id.startswith(f"{code},")
    assert f.parse_document_id(edoc.document_id, "DocumentId").organ_id == code


@pytest.mark.parametrize("code", ["H41" + ".0" * 17, "h41.01", "H41.01.", "41.H41"])
def test_a_malformed_code_of_either_form_is_refused_naming_the_element(code: str) -> None:
    data = (FIELD / EDOC).read_bytes().replace(b">000.00.00.H29<", f">{code}<".encode())
    with pytest.raises(
        SchemaViolation, match=r"To(\[\d+\])?/OrganId.*(is not an OrganId|longer than an OrganId)"
    ):
        read(f.load_xml(data))


def test_what_axis_writes_comes_in_the_standards_order() -> None:
    edoc = read(tree(EDOC))
    assert isinstance(edoc, f.Edoc)
    message = f.build_edoc(edoc).find(f".//{NS}MessageHeader")
    assert message is not None
    names = [etree.QName(child).localname for child in message]
    standard = [
        "From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject",
        "Content", "SignerInfo", "DueDate", "OtherInfo", "SteeringType", "ToPlaces",
        "ResponseFor",
    ]  # fmt: skip
    assert names == sorted(names, key=standard.index)
