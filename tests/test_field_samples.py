"""Every package of ``samples/field/`` through a real hub, as its sender's software would send it.

Each sample is signed with xmlsec1 (enveloped, ``Reference URI=""``; the SDK's placeholder
``Signature`` replaced by the real one, or the signature added where the sample has none)
by its sender, whose certificate an outside CA issued, and posted over the node API with that
sender's certificate, in an order where what a package refers to was sent before it. CRLF
samples are sent with CRLF. Each gets 201, or the refusal that is right by QCVN 102:2016,
asserted with its problem type and the element it names; every accepted package lands where
the standard says (its recipients, the delivery a status, recall or update acts on); and what
every recipient fetches is the posted bytes, which verify with xmlsec1.

SOURCES.md beside the samples says where each comes from. The refusals: the load-test
template that is not well-formed (400), Bkav's ``30/10/2020`` PromulgationDate, an impossible
``2014/02/30`` in the DocumentId an update acts on, an OrganId that is no code
(``28.22.H17``) and a From that disagrees with its DocumentId (each 422, naming it); and the
VNPT sample kept with its placeholder signature (422 as written; signed, it is the document
``J1_new`` already delivered, with other attachment bytes: 409).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axis.core import pki
from axis.errors import AxisError
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.sqlite import SqliteStore
from axis.usecases import registration
from nodes.client import Sent
from tests.conftest import LiveHub, live_hub
from tests.helpers import FIELD, cli

pytestmark = [
    pytest.mark.process,  # xmlsec1 signs and verifies: some sixty processes
    pytest.mark.skipif(
        not shutil.which("xmlsec1"), reason="needs xmlsec1 (scripts/system-deps.sh)"
    ),
]

G22, H41, H14, G17 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14", "000.00.00.G17"
G09, H29, A80 = "000.00.00.G09", "000.00.00.H29", "000.00.00.A80"
H53_11, A53_01, H53, H53_12 = "000.00.11.H53", "000.00.01.A53", "000.00.00.H53", "000.00.12.H53"
AGENCIES = {
    G22: "Văn phòng Chính phủ", H41: "UBND Tỉnh Nghệ An", H14: "UBND Tỉnh Cao Bằng",
    G17: "Sở Thông tin truyền thông Hải Phòng", G09: "Bộ Tài chính",
    H29: "UBND Thành phố Hà Nội", A80: "Cơ quan A80", H53_11: "Sở Tài chính Tây Ninh",
    A53_01: "Cơ quan A53", H53: "UBND tỉnh Tây Ninh", H53_12: "Sở Tây Ninh",
}  # fmt: skip

DSIG = b"""<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>\
<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>\
<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>\
<Reference URI=""><Transforms>\
<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>\
<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>\
<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference>\
</SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"""
# The SDK's placeholder: Signature in the edXML namespace (the samples' default), fixed values.
PLACEHOLDER = re.compile(rb"<Signature>.*?</Signature>", re.S)
HEADER_END = b"</edXML:edXMLHeader>"
# The deliveries of the accepted packages that their recipients fetch: 31, less the three the
# two recalls took back before anyone fetched them (H41's of J1_new; H14's and G17's of 7816).
EXPECTED_FETCHES = 28


@dataclass
class Outside:
    """The outside CA and, per agency, the key files xmlsec1 signs with."""

    ca: Path
    keys: dict[str, tuple[Path, Path]]


@dataclass
class Field:
    hub: LiveHub
    outside: Outside
    tmp: Path
    posted: dict[str, tuple[Sent, bytes, str]]  # sample -> (answer, bytes, sender)

    def signed(self, sample: str, sender: str, body: bytes | None = None) -> bytes:
        """The sample signed by ``sender`` with xmlsec1, in the sample's own line ends."""
        text = body if body is not None else (FIELD / sample).read_bytes()
        crlf = b"\r\n" in text
        text = text.replace(b"\r\n", b"\n")
        if PLACEHOLDER.search(text):
            text = PLACEHOLDER.sub(DSIG, text, count=1)
        else:
            text = text.replace(HEADER_END, DSIG + HEADER_END, 1)
        name = Path(sample).name
        template, out = self.tmp / f"{name}.template.xml", self.tmp / f"{name}.signed.xml"
        template.write_bytes(text)
        key, cert = self.outside.keys[sender]
        cli("xmlsec1", "--sign", "--privkey-pem", f"{key},{cert}", "--output", out, template)
        signed = out.read_bytes()
        return signed.replace(b"\n", b"\r\n") if crlf else signed

    async def post(
        self, sample: str, sender: str, *, sign: bool = True, body: bytes | None = None
    ) -> Sent:
        package = self.signed(sample, sender, body) if sign else (FIELD / sample).read_bytes()
        sent = await self.hub.client(sender).post_package(package)
        assert sent.created, sample
        self.posted[sample] = (sent, package, sender)
        return sent

    async def refused(
        self,
        sample: str,
        sender: str,
        problem: str,
        status: int,
        *words: str,
        sign: bool = True,
        body: bytes | None = None,
    ) -> None:
        package = self.signed(sample, sender, body) if sign else (FIELD / sample).read_bytes()
        with pytest.raises(AxisError) as exc:
            await self.hub.client(sender).post_package(package)
        err = exc.value
        assert (err.problem_name, err.status) == (problem, status), f"{sample}: {err}"
        for word in words:
            assert word in (err.detail or ""), f"{sample}: {word!r} not in {err.detail!r}"

    async def states(self, sample: str) -> dict[str, tuple[str, str | None]]:
        """Each recipient's (state, last status code) of a posted package, as its sender sees."""
        sent, _, sender = self.posted[sample]
        rows = await self.hub.client(sender).track(sent.answer["id"])
        return {r["to"]: (r["state"], r["status_code"]) for r in rows}


def outside_ca(tmp: Path) -> Outside:
    ca_key, ca_cert = pki.create_ca("Government CA (a stand-in for the test)")
    ca = tmp / "outside-ca.pem"
    ca.write_bytes(pki.cert_to_pem(ca_cert))
    keys = {}
    for organ_id, name in AGENCIES.items():
        key, cert = pki.issue_agency_cert(ca_key, ca_cert, organ_id, name, pki.new_key("rsa"))
        key_file, cert_file = tmp / f"{organ_id}.key.pem", tmp / f"{organ_id}.cert.pem"
        key_file.write_bytes(pki.key_to_pem(key))
        cert_file.write_bytes(pki.cert_to_pem(cert))
        keys[organ_id] = (key_file, cert_file)
    return Outside(ca, keys)


@pytest.fixture
async def field(data: DataDir, tmp_path: Path) -> AsyncIterator[Field]:
    """A hub that trusts the outside CA, with the samples' agencies registered under it."""
    outside = outside_ca(tmp_path)
    datadir.trust_ca(data, outside.ca.read_bytes())  # before it starts: TLS trusts it too
    store = SqliteStore(data.database)
    await store.open()
    try:
        for organ_id, name in AGENCIES.items():
            key, cert = outside.keys[organ_id]
            await registration.register(
                data, store, organ_id, name, hub_url="https://localhost", cert_pem=cert.read_bytes()
            )
            (data.profile(organ_id) / "key.pem").write_bytes(key.read_bytes())
    finally:
        await store.close()
    async with live_hub(data) as hub:
        yield Field(hub, outside, tmp_path, {})


async def test_every_field_sample_through_the_hub(field: Field) -> None:
    f = field
    # -- VNPT's EdXML102 library: G09 to H29 and H41 ----------------------------------------
    j1 = await f.post("vnpt-sdk-output/J1_new.edxml", G09)
    assert j1.answer["recipients"] == [H29, H41]
    await f.refused(
        "vnpt-sdk-output/J1_new_placeholder.edxml", G09, "invalid-signature", 422,
        "placeholder", "XMLDSig", sign=False,
    )  # fmt: skip
    # Signed, it is J1_new again (same DocumentId, new) with other attachment bytes.
    await f.refused(
        "vnpt-sdk-output/J1_new_placeholder.edxml", G09, "duplicate-conflict", 409,
        "000.00.00.G09,2026/11/29,12/BTC-VP",
    )  # fmt: skip
    status = await f.post("vnpt-sdk-output/J5_status_01.edxml", H29)
    assert status.answer["recipients"] == [G09]
    assert (await f.states("vnpt-sdk-output/J1_new.edxml"))[H29] == ("acknowledged", "01")
    await f.post("vnpt-sdk-output/J5_status_03.edxml", H29)
    assert (await f.states("vnpt-sdk-output/J1_new.edxml"))[H29] == ("acknowledged", "03")
    answering = await f.post("vnpt-sdk-output/J1r_new_responsefor.edxml", G09)
    assert answering.answer["recipients"] == [H29, H41]
    # The recall names the document in Bussiness/DocumentId: H41 had not fetched it (taken
    # back); H29 had acknowledged it (kept, and asked to answer 02 or 03).
    recall = await f.post("vnpt-sdk-output/J2_recall.edxml", G09)
    assert sorted(recall.answer["recipients"]) == [H29, H41]
    assert await f.states("vnpt-sdk-output/J1_new.edxml") == {
        H29: ("acknowledged", "03"), H41: ("recalled", None),
    }  # fmt: skip
    # The update's ReceiverList names H41 alone, but its DocumentReceiver is 0: who receives
    # the document has not changed, so it goes to all its recipients, as its To says.
    update = await f.post("vnpt-sdk-output/J3_update.edxml", G09)
    assert update.answer["recipients"] == [H29, H41]
    # The replacement: a document of its own (14/BTC-VP) for the OrganIdList's agencies.
    replacement = await f.post("vnpt-sdk-output/J4_replace.edxml", G09)
    assert replacement.answer["recipients"] == [H29, H41]
    assert replacement.answer["document_id"] == "000.00.00.G09,2026/11/30,14/BTC-VP"

    # -- the SDK's example set: G22's 7816/VPCP-TTĐT to H41, H14, G17 -----------------------
    await f.refused(
        "sdk-examples/resources_edoc.edxml", G22, "malformed-xml", 400,
        "not well-formed", "Opening and ending tag mismatch: From", sign=False,
    )  # fmt: skip
    new = await f.post("sdk-examples/xml_dc0bdef0-c7a3-4aaf-b717-777303442973.edxml", G22)
    assert new.answer["recipients"] == [H41, H14, G17]
    original = "sdk-examples/xml_dc0bdef0-c7a3-4aaf-b717-777303442973.edxml"
    await f.refused(
        "sdk-examples/resources_edoc_new.edxml", A80, "schema-violation", 422,
        "To/OrganId", "28.22.H17",
    )  # fmt: skip
    # Its other fault, alone: From is A80, its DocumentId names G22.
    fixed_to = (
        (FIELD / "sdk-examples/resources_edoc_new.edxml")
        .read_bytes()
        .replace(
            b"<edXML:OrganId>28.22.H17</edXML:OrganId>",
            f"<edXML:OrganId>{H41}</edXML:OrganId>".encode(),
        )
    )
    await f.refused(
        "sdk-examples/resources_edoc_new.edxml", A80, "schema-violation", 422,
        "MessageHeader/DocumentId", "names 000.00.00.G22, not the sender 000.00.00.A80",
        body=fixed_to,
    )  # fmt: skip
    for sample, code in (
        ("sdk-examples/resources_status.edxml", "01"),
        ("sdk-examples/resources_status_inbox__01.edxml", "01"),
        ("sdk-examples/resources_status_rejection_02.edxml", "02"),
        ("sdk-examples/resources_status_acceptance_03.edxml", "03"),
        ("sdk-examples/resources_status_assignment_04.edxml", "04"),
        ("sdk-examples/resources_status_processing_05.edxml", "05"),
        ("bkav/edoc-service_src_main_resources_status_processing_05.edxml", "05"),
        ("sdk-examples/resources_status_finish_06.edxml", "06"),
    ):
        answered = await f.post(sample, H41)
        assert answered.answer["recipients"] == [G22], sample
        assert (await f.states(original))[H41] == ("acknowledged", code), sample
    # 13 comes from the document's sender, to the recipient ResponseFor/OrganId names.
    take_back = await f.post("sdk-examples/resources_status_cancellation_13.edxml", G22)
    assert take_back.answer["recipients"] == [H41]
    assert (await f.states(original))[H41] == ("acknowledged", "13")
    for sample, code in (
        ("sdk-examples/resources_status_change-acceptance_15.edxml", "15"),
        ("sdk-examples/resources_status_change-rejection_16.edxml", "16"),
    ):
        assert (await f.post(sample, H41)).answer["recipients"] == [G22]
        assert (await f.states(original))[H41] == ("acknowledged", code)
    # The recall names the document in MessageHeader/DocumentId, as the SDK's samples do.
    revocation = await f.post("sdk-examples/resources_edoc_revocation.edxml", G22)
    assert sorted(revocation.answer["recipients"]) == [G17, H14, H41]
    assert await f.states(original) == {
        H41: ("acknowledged", "16"), H14: ("recalled", None), G17: ("recalled", None),
    }  # fmt: skip
    await f.refused(
        "sdk-examples/resources_edoc_update.edxml", G22, "schema-violation", 422,
        "Bussiness/DocumentId", "2014/02/30",
    )  # fmt: skip
    # It replaces 7806 (2014/01/30), which never passed through this hub: a whole document,
    # for the agencies of its To that its OrganIdList names.
    replaced = await f.post("sdk-examples/resources_edoc_replacement.edxml", G22)
    assert replaced.answer["recipients"] == [H41, H14]

    # -- Bkav's integrator ---------------------------------------------------------------------
    await f.refused(
        "bkav/edoc-service_src_main_resources_edoc_new.edxml", H53_11, "schema-violation", 422,
        "PromulgationDate", "30/10/2020", "yyyy/MM/dd",
    )  # fmt: skip
    await f.refused(
        "bkav/edoc-webapp_src_main_resources_edoc_update.edxml", G22, "schema-violation", 422,
        "Bussiness/DocumentId", "2014/02/30",
    )  # fmt: skip

    # -- what every recipient fetches --------------------------------------------------------
    checked = 0
    for sample, (sent, package, _) in f.posted.items():
        for to in sent.answer["recipients"]:
            node = f.hub.client(to)
            if (await f.states(sample)).get(to, ("",))[0] == "recalled":
                with pytest.raises(AxisError) as exc:
                    await node.get(sent.answer["id"])
                assert exc.value.problem_name == "not-allowed"  # taken back: gone
                continue
            body = await node.get(sent.answer["id"])
            assert body == package, f"{sample} as {to} fetched it"
            copy = f.tmp / f"fetched-{checked}.xml"
            copy.write_bytes(body)
            cli("xmlsec1", "--verify", "--trusted-pem", f.outside.ca, copy)
            await node.verified(body)  # and the recipient's node reads it, signer and all
            checked += 1
    assert checked == EXPECTED_FETCHES, checked
    assert b"\r\n" in f.posted["vnpt-sdk-output/J1_new.edxml"][1]  # sent as VNPT writes it
