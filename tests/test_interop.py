"""Interop with software that is not Axis: an outside CA made by openssl, a package signed by
xmlsec1, posted by curl with a client certificate; the recipient's copy verifies with xmlsec1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import LiveHub
from tests.helpers import cli, free_port, init_data, serving

pytestmark = pytest.mark.process  # each starts processes: hubs, commands, workers

SENDER, RECIPIENT = "000.00.00.H29", "000.00.00.H41"
PROFILE = Path(__file__).resolve().parents[1] / "certs" / "agency-ext.cnf"

needs_tools = pytest.mark.skipif(
    not (shutil.which("xmlsec1") and shutil.which("curl") and shutil.which("openssl")),
    reason="needs xmlsec1, curl and openssl (make test installs them: scripts/system-deps.sh)",
)

TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{sender}</edXML:OrganId><edXML:OrganName>UBND Hà Nội</edXML:OrganName></edXML:From>
        <edXML:To><edXML:OrganId>{recipient}</edXML:OrganId><edXML:OrganName>UBND Nghệ An</edXML:OrganName></edXML:To>
        <edXML:DocumentId>{sender},2026/11/29,88/UBND-KGVX</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>88</edXML:CodeNumber><edXML:CodeNotation>UBND-KGVX</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>Hà Nội</edXML:Place><edXML:PromulgationDate>2026/11/29</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeDetail>0</edXML:TypeDetail></edXML:DocumentType>
        <edXML:Subject>V/v phối hợp tổ chức hội nghị trực tuyến</edXML:Subject>
        <edXML:OtherInfo><edXML:Priority>1</edXML:Priority></edXML:OtherInfo>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>{sender}</edXML:OrganId><edXML:Timestamp>2026/11/29 09:30:00</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType></edXML:Bussiness>
      </edXML:TraceHeaderList>
      <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
        <SignedInfo>
          <CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
          <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
          <Reference URI="">
            <Transforms>
              <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
              <Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
            </Transforms>
            <DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
            <DigestValue/>
          </Reference>
        </SignedInfo>
        <SignatureValue/>
        <KeyInfo><X509Data/></KeyInfo>
      </Signature>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>text/plain</edXML:ContentType>
          <edXML:AttachmentName>giay-moi.txt</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>giay-moi.txt</AttachmentName>
      <ContentType>text/plain</ContentType>
      <edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">R2nhuqV5IG3hu51pIGjhu5lpIG5naOG7iw==</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"""


def outside_ca(tmp: Path) -> tuple[Path, Path, Path]:
    """openssl makes a CA and issues the sender's key and certificate from it."""
    ca_key, ca_cert = tmp / "ca-key.pem", tmp / "ca.pem"
    cli("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
        "-out", ca_cert, "-days", "30", "-subj", "/O=Ban Co yeu (test)/CN=Outside CA",
        "-config", PROFILE, "-extensions", "ca")  # fmt: skip
    key, csr, cert = tmp / "key.pem", tmp / "req.csr", tmp / "cert.pem"
    cli("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", f"/O={SENDER}/CN={SENDER}")  # fmt: skip
    cli("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-out", cert, "-days", "30", "-extfile", PROFILE,
        "-extensions", "agency")  # fmt: skip
    return ca_cert, key, cert


@needs_tools
def test_xmlsec1_signed_package_via_curl(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    ca_cert, key, cert = outside_ca(tmp_path)
    cli("axis", "ca", "trust", ca_cert, "--data", data)
    cli("axis", "agency", "add", SENDER, "--name", "UBND thành phố Hà Nội",
        "--cert", cert, "--data", data)  # fmt: skip
    cli("axis", "agency", "add", RECIPIENT, "--name", "UBND tỉnh Nghệ An", "--data", data)

    template = tmp_path / "template.xml"
    template.write_text(TEMPLATE.format(sender=SENDER, recipient=RECIPIENT), encoding="utf-8")
    signed = tmp_path / "signed.xml"
    cli("xmlsec1", "--sign", "--privkey-pem", f"{key},{cert}", "--output", signed, template)

    with serving(data, port, admin_port):
        posted = cli(
            "curl", "--silent", "--show-error", "--cert", cert, "--key", key,
            "--cacert", data / "ca" / "ca.pem", "-H", "Content-Type: application/xml",
            "--data-binary", f"@{signed}", "-w", "\n%{http_code}",
            f"https://localhost:{port}/v1/packages",
        ).stdout.rsplit("\n", 1)  # fmt: skip
        assert posted[1] == "201", posted[0]
        answer = json.loads(posted[0])
        assert answer["recipients"] == [RECIPIENT]

        fetched = tmp_path / "fetched.xml"
        profile = data / "agencies" / RECIPIENT
        cli("axis-node", "--profile", profile, "get", answer["id"], "-o", fetched)
        assert fetched.read_bytes() == signed.read_bytes()
        cli("xmlsec1", "--verify", "--trusted-pem", ca_cert, fetched)

        # The same bytes again: 200 and the first answer.
        again = cli(
            "curl", "--silent", "--cert", cert, "--key", key, "--cacert", data / "ca" / "ca.pem",
            "-H", "Content-Type: application/xml", "--data-binary", f"@{signed}",
            "-w", "\n%{http_code}", f"https://localhost:{port}/v1/packages",
        ).stdout.rsplit("\n", 1)  # fmt: skip
        assert again[1] == "200" and json.loads(again[0]) == answer


@needs_tools
async def test_the_receipt_verifies_with_xmlsec1(hub: LiveHub, tmp_path: Path) -> None:
    """Anyone holding the hub's certificate (or its CA) can check a receipt with other tools."""
    answer = (await hub.client("000.00.00.G22").send([RECIPIENT], "Biên nhận")).answer
    receipt = tmp_path / "receipt.xml"
    receipt.write_text(answer["receipt"], encoding="utf-8")
    cli("xmlsec1", "--verify", "--trusted-pem", hub.data.ca_cert, receipt)
    tampered = tmp_path / "tampered.xml"
    tampered.write_text(answer["receipt"].replace(answer["sha256"], "0" * 64), encoding="utf-8")
    assert cli("xmlsec1", "--verify", "--trusted-pem", hub.data.ca_cert, tampered,
               check=False).returncode != 0  # fmt: skip
