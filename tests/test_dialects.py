"""The field's dialects (axis/core/edxml_dialects.py): each lays a package out as its software
does, and every one reads back as the same package, signature intact, at the hub and at the
recipient."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest
from lxml import etree

from axis.core import formats, pki
from axis.core.edxml_dialects import BOM, DIALECTS, XLINK, Dialect, parse_mix
from axis.core.formats import (
    NS,
    Attachment,
    Business,
    BusinessDocType,
    DocumentChanges,
    Edoc,
    Organ,
    Receiver,
    ResponseFor,
    SignerInfo,
    StatusNotice,
    Trace,
)
from axis.core.intake import IntakePolicy, key_info_signer, read_package
from axis.core.signing import Signer, VerificationPolicy, Verifier
from nodes.client import NodeClient
from nodes.profile import Profile
from tests.conftest import LiveHub

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"
CA_KEY, CA_CERT = pki.create_ca("Dialect test CA")
KEY, CERT = pki.issue_agency_cert(CA_KEY, CA_CERT, G22, "Văn phòng Chính phủ")
SIGNER = Signer(pki.key_to_pem(KEY), pki.cert_to_pem(CERT))
POLICY = IntakePolicy(Verifier(VerificationPolicy(), pki.TrustStore((CA_CERT,))))
Q = f"{{{NS}}}"


def edoc(dialect: Dialect) -> Edoc:
    rng = random.Random(7)
    return Edoc(
        sender=Organ(G22, "Văn phòng Chính phủ", "Chính phủ", "1 Hoàng Hoa Thám", "vp@gov.vn"),
        recipients=(Organ(H41, "UBND tỉnh Nghệ An"), Organ(H10, "UBND tỉnh Điện Biên")),
        document_id=f"{G22},2026/11/29,12/VPCP",
        code_number="12",
        code_notation="VPCP",
        place="Hà Nội",
        promulgation_date=date(2026, 11, 29),
        doc_type="1",
        type_detail="0",
        type_name="Công văn",
        subject="Cập nhật kế hoạch",
        content="Nội dung\nhai dòng",
        signer=SignerInfo("Nguyễn Văn A", "KT. BỘ TRƯỞNG", "Thứ trưởng"),
        due_date=date(2026, 12, 31),
        response_for=(
            ResponseFor(H41, "45/UBND", date(2026, 11, 20), f"{H41},2026/11/20,45/UBND"),
        ),
        traces=(Trace(G22, datetime(2026, 11, 29, 9, 0, 0)),),
        business=Business(
            BusinessDocType.UPDATE,
            f"{G22},2026/11/29,12/VPCP",
            "Sửa trích yếu",
            DocumentChanges(True, False, (Receiver(H41), Receiver(H10))),
        ),
        attachments=tuple(
            Attachment(dialect.content_id(n, rng), f"tep-{n}.pdf", "application/pdf", b"%PDF" * n)
            for n in (1, 2)
        ),
    )


def written(dialect: Dialect, tree: etree._Element) -> bytes:
    return dialect.finish(SIGNER.sign(dialect.shape(tree)))


def children(root: etree._Element, parent: str) -> list[str]:
    found = root.find(f".//{Q}{parent}")
    assert found is not None
    return [etree.QName(c).localname for c in found if isinstance(c.tag, str)]


@pytest.mark.parametrize("name", list(DIALECTS))
def test_every_dialect_reads_back_as_the_same_package(name: str) -> None:
    dialect = DIALECTS[name]
    expected = edoc(dialect)
    body = written(dialect, formats.build_edoc(expected))
    assert read_package(body, POLICY, key_info_signer) == expected
    notice = StatusNotice(
        Organ(G22, "Văn phòng Chính phủ"),
        expected.response_for[0],
        "05",
        datetime(2026, 11, 29, 10, 0, 0),
        "Đang xử lý",
    )
    assert (
        read_package(written(dialect, formats.build_status(notice)), POLICY, key_info_signer)
        == notice
    )


def test_what_each_dialect_writes() -> None:
    standard = written(DIALECTS["standard"], formats.build_edoc(edoc(DIALECTS["standard"])))
    assert b"\r\n" not in standard and not standard.startswith(BOM)

    vnpt_dialect = DIALECTS["vnpt"]
    vnpt = written(vnpt_dialect, formats.build_edoc(edoc(vnpt_dialect)))
    assert b"\r\n" in vnpt and not vnpt.startswith(BOM)
    root = formats.load_xml(vnpt)
    header = children(root, "MessageHeader")
    assert header[:4] == ["From", "To", "To", "DocumentId"]
    assert children(root, "From")[:3] == ["OrganId", "OrganizationInCharge", "OrganName"]
    assert children(root, "DocumentType") == ["Type", "TypeDetail", "TypeName"]
    assert children(root, "SignerInfo")[-1] == "FullName"
    assert children(root, "TraceHeaderList")[:2] == ["Bussiness", "TraceHeader"]
    assert children(root, "Reference") == ["ContentId", "ContentType", "AttachmentName"]

    gateway_dialect = DIALECTS["gateway"]
    gateway = formats.load_xml(written(gateway_dialect, formats.build_edoc(edoc(gateway_dialect))))
    ids = [e.text or "" for e in gateway.iter(f"{Q}ContentId")]
    assert all(i.startswith("cid:") and len(i) == 40 for i in ids), ids  # cid: and a UUID

    dotnet_dialect = DIALECTS["dotnet"]
    dotnet = written(dotnet_dialect, formats.build_edoc(edoc(dotnet_dialect)))
    assert dotnet.startswith(BOM) and b"\r\n" in dotnet
    root = formats.load_xml(dotnet)
    assert children(root, "MessageHeader")[-1] == "DocumentId"
    assert children(root, "From")[:3] == ["OrganId", "OrganName", "OrganizationInCharge"]
    assert children(root, "DocumentType") == ["Type", "TypeName", "TypeDetail"]
    assert children(root, "TraceHeaderList")[0] == "TraceHeader"
    trace_list = root.find(f".//{Q}TraceHeaderList")
    assert trace_list is not None and trace_list.get("mustUnderstand") == "1"
    reference = root.find(f".//{Q}Reference")
    assert reference is not None
    assert reference.get(f"{{{XLINK}}}href") == reference.findtext(f"{Q}ContentId") == "1"
    assert b' xlink:href="1"' in dotnet and b"xmlns:ns0" not in dotnet  # as the SDK writes it


def test_a_mix_of_dialects() -> None:
    assert parse_mix("standard:2, vnpt ,dotnet:0.5") == {"standard": 2, "vnpt": 1, "dotnet": 0.5}
    for bad, why in (
        ("klingon", "no dialect"),
        ("vnpt:x", "not a number"),
        ("vnpt:0", "positive"),
        (" , ", "at least one"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_mix(bad)


@pytest.mark.parametrize("name", list(DIALECTS))
async def test_each_dialect_through_the_hub(hub: LiveHub, name: str) -> None:
    """An agency writing a dialect sends, the recipient fetches the same bytes, verified, and
    answers in its own dialect."""
    dialect = DIALECTS[name]
    sender = NodeClient(
        Profile.load(hub.data.profile(G22)), hub_url=hub.running.url, dialect=dialect, seed=1
    )
    recipient = hub.client(H41)
    try:
        sender.prime(hub.directory)
        package = sender.build_edoc(
            [H41],
            f"Văn bản kiểu {name}",
            number=5,
            attachments=(Attachment("x", "phu-luc.pdf", "application/pdf", b"%PDF-1.7 phu luc"),),
        )
        sent = await sender.post_package(package)
        assert sent.created
        assert await recipient.get(sent.answer["id"]) == package
        received = await recipient.edoc(sent.answer["id"])
        assert received.attachments[0].content_id == dialect.content_id(1, random.Random(1))
        recipient.dialect = dialect
        await recipient.status(sent.answer["id"], "03")
        assert (await sender.track(sent.answer["id"]))[0]["status_code"] == "03"
        update = sender.build_followup(received, BusinessDocType.UPDATE, subject="Sửa")
        assert (await sender.post_package(update)).created
    finally:
        await sender.close()
        recipient.dialect = DIALECTS["standard"]
    assert received.subject == f"Văn bản kiểu {name}"
