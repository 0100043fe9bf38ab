"""The node API through a real hub on 127.0.0.1 over real TLS, with real node clients."""

from __future__ import annotations

import dataclasses
import ssl
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from axis.core import formats, pki
from axis.core.receipt import verify_receipt
from axis.core.signing import Signer
from axis.errors import AxisError
from axis.store import open_store
from axis.usecases import registration
from nodes.client import NodeClient
from tests.conftest import LiveHub
from tests.helpers import assert_problem, counts, foreign_identity, self_signed_identity
from tests.test_signing import signxml_sign

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"


async def test_exchange_with_attachment(hub: LiveHub, tmp_path: Path) -> None:
    pdf = tmp_path / "quyet-dinh.pdf"
    pdf.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 40)
    sender, recipient, outsider = hub.client(G22), hub.client(H41), hub.client(H10)

    package = sender.build_edoc([H41], "V/v triển khai liên thông văn bản", [pdf])
    sent = await sender.post_package(package)
    assert sent.created
    answer = sent.answer
    assert answer["kind"] == "edoc" and answer["recipients"] == [H41]
    receipt = verify_receipt(answer["receipt"], pki.load_cert(hub.data.hub_cert.read_bytes()))
    assert (receipt.package_id, receipt.sha256, receipt.sender) == (
        answer["id"],
        answer["sha256"],
        G22,
    )

    inbox = await recipient.inbox()
    assert [i["id"] for i in inbox["items"]] == [answer["id"]]
    assert inbox["items"][0]["from"] == G22
    body = await recipient.get(answer["id"])
    assert body == package  # exactly the bytes the sender signed
    parsed = formats.parse_package(formats.load_xml(body))
    assert isinstance(parsed, formats.Edoc)
    assert parsed.attachments[0].data == pdf.read_bytes()

    # A third agency can neither list, read, ack nor track it.
    assert (await outsider.inbox())["items"] == []
    for attempt in (outsider.get, outsider.ack, outsider.track):
        with pytest.raises(AxisError) as exc:
            await attempt(answer["id"])
        assert_problem(exc, "not-allowed", 403)

    assert [(d["to"], d["state"]) for d in await sender.track(answer["id"])] == [(H41, "delivered")]
    await recipient.ack(answer["id"])
    await recipient.ack(answer["id"])  # idempotent
    assert (await recipient.inbox())["items"] == []
    assert (await sender.track(answer["id"]))[0]["state"] == "acknowledged"


async def test_resend_is_idempotent_and_conflicts_are_refused(hub: LiveHub) -> None:
    sender = hub.client(G22)
    package = sender.build_edoc([H41, H10], "Báo cáo tháng", number=7)
    first = await sender.post_package(package)
    again = await sender.post_package(package)
    assert first.created and not again.created
    assert again.answer == first.answer
    other = sender.build_edoc([H41, H10], "Báo cáo tháng (sửa)", number=7)
    with pytest.raises(AxisError) as exc:
        await sender.post_package(other)
    assert_problem(exc, "duplicate-conflict", 409)
    assert counts(hub.data) == (1, 2)


async def test_a_package_is_not_looked_up_before_it_is_stored_and_its_resend_answered_alike(
    hub: LiveHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    sent = await sender.send([H41], "Giấy mời họp")
    store = hub.running.hub.store
    looks: list[str] = []
    by_key, by_bytes = store.find_by_key, store.find_by_sha256

    async def spied_key(organ_id: str, key: str) -> object:
        looks.append(key)
        return await by_key(organ_id, key)

    async def spied_bytes(organ_id: str, sha256: str) -> object:
        looks.append(f"sha256:{sha256}")
        return await by_bytes(organ_id, sha256)

    monkeypatch.setattr(store, "find_by_key", spied_key)
    monkeypatch.setattr(store, "find_by_sha256", spied_bytes)
    status = recipient.build_status(await recipient.edoc(sent.answer["id"]), "03")
    first = await recipient.post_package(status)
    again = await recipient.post_package(status)
    assert first.created and not again.created and again.answer == first.answer
    # Its key is its bytes: the store's unique key answered the resend; nothing was looked up.
    assert looks == []
    assert counts(hub.data) == (2, 2)
    edoc = sender.build_edoc([H41], "Giấy mời họp (lần 2)", number=2)
    assert (await sender.post_package(edoc)).created
    assert not (await sender.post_package(edoc)).created  # an edoc's resend, alike
    assert looks == []
    assert counts(hub.data) == (3, 3)

    # A resend that would be refused now (its sender's code closed since) is still the same
    # package: the first answer, found by its bytes after the refusal.
    await registration.close_code(store, H41, "000.00.00.H53")
    looks.clear()
    late = await recipient.post_package(status)
    assert not late.created and late.answer == first.answer
    assert looks == [f"sha256:{first.answer['sha256']}"]
    fresh = recipient.build_status(await recipient.edoc(sent.answer["id"]), "05")
    with pytest.raises(AxisError) as exc:
        await recipient.post_package(fresh)  # not a resend: refused as it stands
    assert_problem(exc, "not-allowed", 403)
    assert "is closed" in str(exc.value)
    assert counts(hub.data) == (3, 3)


async def test_inbox_pages_oldest_first(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    ids = [(await sender.send([H41], f"Văn bản số {n}", number=n)).answer["id"] for n in range(5)]
    # Time-ordered ids (UUIDv7), so the indexes keyed by them grow at one end.
    assert all(uuid.UUID(i).version == 7 and len(i) == 32 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)
    first = await recipient.inbox(limit=2)
    assert [i["id"] for i in first["items"]] == ids[:2] and first["next"]
    assert [i["id"] for i in await recipient.inbox_all()] == ids


def _tamper(package: bytes) -> bytes:
    return package.replace("Văn bản gốc".encode(), "Văn bản giả".encode())


async def test_refusals_store_nothing(hub: LiveHub, tmp_path: Path) -> None:
    sender = hub.client(G22)
    good = sender.build_edoc([H41], "Văn bản gốc")
    cases: list[tuple[bytes, str, int]] = [
        (_tamper(good), "invalid-signature", 422),
        (b"<edXML><unclosed>", "malformed-xml", 400),
        (b"\x00\xff\xfe garbage", "malformed-xml", 400),
        (_xxe(), "malformed-xml", 400),
        (sender.build_edoc(["000.00.00.Z99"], "Gửi nhầm"), "unknown-recipient", 422),
        (good.replace(H41.encode(), b"000.00.00.h41"), "schema-violation", 422),
        (hub.client(H41).build_edoc([G22], "Giả danh"), "sender-mismatch", 403),
    ]
    for body, name, status in cases:
        with pytest.raises(AxisError) as exc:
            await sender.post_package(body)
        assert_problem(exc, name, status)
    assert counts(hub.data) == (0, 0)
    assert (await hub.client(H41).inbox())["items"] == []


def _xxe() -> bytes:
    return (
        b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&x;</edXML>'
    )


async def test_signing_certificates_must_be_the_registered_one(
    hub: LiveHub, tmp_path: Path
) -> None:
    sender = hub.client(G22)
    tree = formats.load_xml(sender.build_edoc([H41], "Chữ ký lạ"))
    unsigned = _strip_signature(tree)
    for make in (foreign_identity, self_signed_identity):
        key, cert = make(G22, tmp_path)
        package = Signer(key.read_bytes(), cert.read_bytes()).sign(unsigned)
        with pytest.raises(AxisError) as exc:
            await sender.post_package(package)
        assert_problem(exc, "untrusted-certificate", 403)
    assert counts(hub.data) == (0, 0)


async def test_sha1_is_refused_by_default(hub: LiveHub) -> None:
    sender = hub.client(G22)
    profile = sender.profile
    pair = (pki.load_key(profile.key.read_bytes()), pki.load_cert(profile.cert.read_bytes()))
    unsigned = _strip_signature(formats.load_xml(sender.build_edoc([H41], "SHA-1")))
    package = signxml_sign(
        pair,
        unsigned,
        signature_algorithm=SignatureMethod.RSA_SHA1,
        digest_algorithm=DigestAlgorithm.SHA1,
    )
    with pytest.raises(AxisError) as exc:
        await sender.post_package(package)
    assert_problem(exc, "invalid-signature", 422)
    assert counts(hub.data) == (0, 0)


def _strip_signature(root: etree._Element) -> etree._Element:
    for signature in root.iter(f"{{{formats.DS_NS}}}Signature"):
        parent = signature.getparent()
        assert parent is not None
        parent.remove(signature)
    return root


async def test_transport_rules(hub: LiveHub) -> None:
    sender = hub.client(G22)
    with pytest.raises(AxisError) as exc:
        await sender._request(
            "POST", "/v1/packages", data=b"{}", headers={"Content-Type": "application/json"}
        )
    assert_problem(exc, "unsupported-media-type", 415)

    # No client certificate: /healthz answers, the API refuses.
    ctx = ssl.create_default_context(cafile=str(sender.profile.ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as anonymous:
        async with anonymous.get(hub.running.url + "/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        async with anonymous.get(hub.running.url + "/v1/inbox") as response:
            assert response.status == 403
            assert response.content_type == "application/problem+json"
            assert (await response.json())["type"] == "urn:axis:problem:untrusted-certificate"

    for bad in ("../../etc/passwd", "0" * 32, "x" * 500):
        with pytest.raises(AxisError) as exc:
            await sender.get(bad)
        assert exc.value.status == 404


@pytest.mark.parametrize("revoker", ["hub", "command-line"])
async def test_revoked_agency_is_refused_at_once(hub: LiveHub, revoker: str) -> None:
    """Revoked through the hub's own store, or by ``axis agency revoke``, which opens the
    database itself beside the running hub: the directory the hub keeps in memory must not
    serve the revoked agency one request longer. A bystander is still served."""
    sender = hub.client(G22)
    await sender.send([H41], "Trước khi thu hồi")
    await hub.client(H41).inbox()  # the hub has H41 in memory now
    if revoker == "hub":
        await hub.running.hub.store.set_agency_active(H41, False)
    else:
        cli = open_store(hub.data.database_url())
        await cli.open()
        try:
            await cli.set_agency_active(H41, False)
        finally:
            await cli.close()
    with pytest.raises(AxisError) as exc:
        await hub.client(H41).inbox()
    assert_problem(exc, "not-allowed", 403)
    with pytest.raises(AxisError) as exc:
        await sender.send([H41], "Sau khi thu hồi")
    assert_problem(exc, "unknown-recipient", 422)
    assert (await sender.inbox()) is not None  # the bystander


async def test_oversized_body_is_refused(data_small_limit: LiveHub) -> None:
    hub = data_small_limit
    sender: NodeClient = hub.client(G22)
    with pytest.raises(AxisError) as exc:
        await sender.post_package(b"<a>" + b"x" * 300_000 + b"</a>")
    assert_problem(exc, "too-large", 413)
    assert counts(hub.data) == (0, 0)
    # The hub is still serving.
    assert (await sender.send([H41], "Vẫn hoạt động")).created


def _status(hub: LiveHub, organ_id: str, edoc: formats.Edoc, code: str) -> bytes:
    """A signed status package from ``organ_id`` about ``edoc``."""
    profile = hub.client(organ_id).profile
    notice = formats.StatusNotice(
        sender=formats.Organ(organ_id, organ_id),
        response_for=formats.ResponseFor(
            edoc.sender.organ_id,
            f"{edoc.code_number}/{edoc.code_notation}",
            edoc.promulgation_date,
            edoc.document_id,
        ),
        status_code=code,
        timestamp=datetime(2026, 11, 29, 9, 30),
    )
    signer = Signer(profile.key.read_bytes(), profile.cert.read_bytes())
    return signer.sign(formats.build_status(notice))


async def test_status_goes_to_the_sender_and_is_recorded(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    package = sender.build_edoc([H41], "Đề nghị báo cáo")
    sent = await sender.post_package(package)
    edoc = formats.parse_package(formats.load_xml(package))
    assert isinstance(edoc, formats.Edoc)

    status = await recipient.post_package(_status(hub, H41, edoc, "03"))
    assert status.created and status.answer["kind"] == "status"
    assert status.answer["recipients"] == [G22]
    assert status.answer["document_id"] == edoc.document_id
    items = (await sender.inbox())["items"]
    assert [(i["id"], i["kind"], i["from"]) for i in items] == [
        (status.answer["id"], "status", H41)
    ]
    assert (await sender.track(sent.answer["id"]))[0]["status_code"] == "03"

    # Only a recipient may answer, and only about a document that exists; who is no party
    # of it is told what it would be told of no document at all (nothing leaks).
    with pytest.raises(AxisError) as exc:
        await hub.client(H10).post_package(_status(hub, H10, edoc, "03"))
    assert_problem(exc, "unknown-document", 404)
    stranger_said = exc.value.detail.replace(edoc.document_id, "X")
    ghost = dataclasses.replace(edoc, document_id=edoc.document_id + "-khac")
    with pytest.raises(AxisError) as exc:
        await recipient.post_package(_status(hub, H41, ghost, "03"))
    assert_problem(exc, "unknown-document", 404)
    assert exc.value.detail.replace(ghost.document_id, "X") == stranger_said
    assert counts(hub.data) == (2, 2)


async def test_recall_goes_to_the_earlier_documents_recipients(hub: LiveHub) -> None:
    sender = hub.client(G22)
    original = formats.parse_package(
        formats.load_xml(sender.build_edoc([H41, H10], "Văn bản sẽ thu hồi", number=9))
    )
    assert isinstance(original, formats.Edoc)
    unsigned = dataclasses.replace(original, subject="Văn bản sẽ thu hồi", traces=())
    await sender.post_package(sender.signer.sign(formats.build_edoc(unsigned)))
    recall = dataclasses.replace(
        unsigned,
        recipients=(formats.Organ(H41, H41),),
        business=formats.Business(
            formats.BusinessDocType.RECALL, original.document_id, "Thu hồi do sai sót"
        ),
    )
    answer = (await sender.post_package(sender.signer.sign(formats.build_edoc(recall)))).answer
    assert sorted(answer["recipients"]) == sorted([H41, H10])

    unknown = dataclasses.replace(
        recall,
        document_id=recall.document_id + "-2",
        business=formats.Business(formats.BusinessDocType.RECALL, "000.00.00.G22,2026/01/01,1/X"),
    )
    with pytest.raises(AxisError) as exc:
        await sender.post_package(sender.signer.sign(formats.build_edoc(unknown)))
    assert_problem(exc, "unknown-document", 404)


async def test_document_id_must_name_the_sender(hub: LiveHub) -> None:
    sender = hub.client(G22)
    edoc = formats.parse_package(formats.load_xml(sender.build_edoc([H41], "Mạo danh số hiệu")))
    assert isinstance(edoc, formats.Edoc)
    borrowed = dataclasses.replace(edoc, document_id=f"{H41},2026/11/29,1/CV")
    with pytest.raises(AxisError) as exc:
        await sender.post_package(sender.signer.sign(formats.build_edoc(borrowed)))
    # A DocumentId that names another agency is malformed for this sender: 422 naming it
    # (it was 403 sender-mismatch, as if the sender were an impostor).
    assert_problem(exc, "schema-violation", 422)
    assert "MessageHeader/DocumentId" in exc.value.detail
    assert counts(hub.data) == (0, 0)


async def test_a_package_to_its_own_sender_is_delivered_and_acked(hub: LiveHub) -> None:
    node = hub.client(G22)
    answer = (await node.send([G22, H41], "Lưu hồ sơ và gửi")).answer
    assert [i["id"] for i in (await node.inbox())["items"]] == [answer["id"]]
    await node.get(answer["id"])
    states = {d["to"]: d["state"] for d in await node.track(answer["id"])}
    assert states == {G22: "delivered", H41: "queued"}
    await node.ack(answer["id"])
    assert (await node.inbox())["items"] == []


async def test_a_comment_inside_the_package_is_refused(hub: LiveHub) -> None:
    sender = hub.client(G22)
    package = sender.build_edoc([H41], "Văn bản gốc")
    commented = package.replace("Văn bản gốc".encode(), "Văn bản<!-- x --> gốc".encode())
    with pytest.raises(AxisError) as exc:
        await sender.post_package(commented)
    assert_problem(exc, "malformed-xml", 400)
    assert counts(hub.data) == (0, 0)


async def test_unknown_routes_answer_problem_json(hub: LiveHub) -> None:
    sender = hub.client(G22)
    with pytest.raises(AxisError) as exc:
        await sender._request("GET", "/v1/nothing-here")
    assert_problem(exc, "unknown-document", 404)
    with pytest.raises(AxisError) as exc:
        await sender._request("DELETE", "/v1/inbox")
    assert_problem(exc, "not-allowed", 405)


async def test_a_recall_skips_recipients_revoked_since(hub: LiveHub) -> None:
    sender = hub.client(G22)
    package = sender.build_edoc([H41, H10], "Sẽ thu hồi", number=3)
    await sender.post_package(package)
    await hub.running.hub.store.set_agency_active(H10, False)
    original = formats.parse_package(formats.load_xml(package))
    assert isinstance(original, formats.Edoc)
    recall = dataclasses.replace(
        original,
        document_id=original.document_id + "-TH",
        traces=(),
        business=formats.Business(formats.BusinessDocType.RECALL, original.document_id),
    )
    answer = (await sender.post_package(sender.signer.sign(formats.build_edoc(recall)))).answer
    assert answer["recipients"] == [H41]
