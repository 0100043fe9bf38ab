"""Signed receipts: what the hub signs is what a holder of its certificate reads back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from axis.core import pki
from axis.core.receipt import RECEIPT_NS, Receipt, ReceiptSigner, receipt_tree, verify_receipt
from axis.errors import InvalidSignature, MalformedXml
from tests.helpers import BIN

ICT = timezone(timedelta(hours=7))  # Indochina Time, the hub's local offset
DSIG = "http://www.w3.org/2000/09/xmldsig#"

RECEIPT = Receipt(
    package_id="01HZX5V8QK3J7W9YB2C4D6E8FG",
    sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    sender="000.00.00.G22",
    recipients=("000.00.00.H41", "000.00.00.H10", "000.00.00.T01"),
    received_at=datetime(2024, 5, 17, 15, 30, 15, 123000, tzinfo=ICT),
    hub="000.00.00.A00",
)


class Hub:
    """A hub identity: its certificate and a signer holding its key."""

    def __init__(self, ca_name: str, kind: str = "rsa") -> None:
        ca_key, ca_cert = pki.create_ca(ca_name)
        key, cert = pki.issue_hub_cert(ca_key, ca_cert, key=pki.new_key(kind))
        self.cert: x509.Certificate = cert
        self.signer = ReceiptSigner(pki.key_to_pem(key), pki.cert_to_pem(cert))


@pytest.fixture(scope="module")
def hub() -> Hub:
    return Hub("Axis development CA")


@pytest.fixture(scope="module")
def other_hub() -> Hub:
    return Hub("Another hub's CA")


@pytest.fixture(scope="module")
def signed(hub: Hub) -> str:
    return hub.signer.sign(RECEIPT)


def test_a_signed_receipt_verifies_to_the_same_fields(hub: Hub, signed: str) -> None:
    got = verify_receipt(signed, hub.cert)
    assert got == RECEIPT
    assert isinstance(got.recipients, tuple)
    assert got.recipients == ("000.00.00.H41", "000.00.00.H10", "000.00.00.T01")  # in order
    assert got.received_at.tzinfo is not None
    assert got.received_at.utcoffset() == timedelta(hours=7)


def test_bytes_verify_like_text(hub: Hub, signed: str) -> None:
    assert verify_receipt(signed.encode("utf-8"), hub.cert) == RECEIPT


def test_a_utc_receipt_with_one_recipient(hub: Hub) -> None:
    r = replace(
        RECEIPT,
        recipients=("000.00.00.H41",),
        received_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    got = verify_receipt(hub.signer.sign(r), hub.cert)
    assert got == r
    assert got.received_at.utcoffset() == timedelta(0)


def test_an_ec_hub_key_signs_receipts_too() -> None:
    ec_hub = Hub("EC CA", kind="ec")
    assert verify_receipt(ec_hub.signer.sign(RECEIPT), ec_hub.cert) == RECEIPT


def test_the_signed_document_layout(signed: str) -> None:
    root = etree.fromstring(signed.encode())
    assert root.tag == f"{{{RECEIPT_NS}}}Receipt"
    assert root.findtext(f"{{{RECEIPT_NS}}}Sha256") == RECEIPT.sha256
    signature = root.find(f"{{{DSIG}}}Signature")
    assert signature is not None  # enveloped
    [reference] = signature.iterfind(f".//{{{DSIG}}}Reference")
    assert reference.get("URI") == ""
    method = signature.find(f".//{{{DSIG}}}SignatureMethod")
    assert method is not None and "sha256" in (method.get("Algorithm") or "")
    assert signature.find(f".//{{{DSIG}}}X509Certificate") is not None


def test_receipt_tree_is_unsigned_and_ordered() -> None:
    tree = receipt_tree(RECEIPT)
    names = [etree.QName(e).localname for e in tree]
    assert names == ["PackageId", "Sha256", "Sender", "Recipients", "ReceivedAt", "Hub"]
    assert tree.find(f"{{{DSIG}}}Signature") is None
    assert tree.findtext(f"{{{RECEIPT_NS}}}ReceivedAt") == "2024-05-17T15:30:15.123+07:00"


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("Sha256", "0" * 64),
        ("PackageId", "01HZX5V8QK3J7W9YB2C4D6E8FH"),
        ("Sender", "000.00.00.H41"),
        ("ReceivedAt", "2024-05-18T15:30:15.123+07:00"),
    ],
)
def test_a_tampered_receipt_fails_verification(
    hub: Hub, signed: str, element: str, value: str
) -> None:
    text = receipt_tree(RECEIPT).findtext(f"{{{RECEIPT_NS}}}{element}")
    original = f"<r:{element}>{text}</r:{element}>"
    assert signed.count(original) == 1
    tampered = signed.replace(original, f"<r:{element}>{value}</r:{element}>")
    with pytest.raises(InvalidSignature):
        verify_receipt(tampered, hub.cert)


def test_an_added_recipient_fails_verification(hub: Hub, signed: str) -> None:
    tampered = signed.replace(
        "</r:Recipients>", "<r:OrganId>000.00.00.G01</r:OrganId></r:Recipients>"
    )
    assert tampered != signed
    with pytest.raises(InvalidSignature):
        verify_receipt(tampered, hub.cert)


def test_a_receipt_checked_against_another_hub_fails(hub: Hub, other_hub: Hub, signed: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_receipt(signed, other_hub.cert)
    with pytest.raises(InvalidSignature):
        verify_receipt(other_hub.signer.sign(RECEIPT), hub.cert)


def test_a_receipt_re_signed_by_another_hub_does_not_pass_as_ours(
    hub: Hub, other_hub: Hub, signed: str
) -> None:
    """An impostor cannot alter a receipt and re-sign it with its own key and certificate."""
    forged = replace(RECEIPT, sha256="0" * 64)
    with pytest.raises(InvalidSignature):
        verify_receipt(other_hub.signer.sign(forged), hub.cert)


def test_a_receipt_that_is_not_one_is_refused_with_our_own_errors(hub: Hub) -> None:
    """Nothing of signxml's leaves verify_receipt: garbage, a DOCTYPE and an unsigned
    document each get an error of the tree."""
    with pytest.raises(MalformedXml):
        verify_receipt("not xml at all", hub.cert)
    with pytest.raises(MalformedXml):
        verify_receipt('<!DOCTYPE r [<!ENTITY x "y">]><r/>', hub.cert)
    with pytest.raises(InvalidSignature):
        verify_receipt(etree.tostring(receipt_tree(RECEIPT), encoding="unicode"), hub.cert)


def test_axis_node_verify_receipt_binds_the_hub_key(tmp_path: Path) -> None:
    """The command checks a receipt against the profile's hub.pem: the hub's passes, one an
    agency of the same CA signed does not (issue 16, class 7)."""
    import subprocess

    from axis.host import datadir
    from axis.host.datadir import DataDir
    from nodes.profile import Profile

    data = DataDir(tmp_path / "data")
    datadir.init(data)
    datadir.write_profile(data, "000.00.00.G22", "VPCP", "https://localhost:8443", key_kind="ec")
    profile = Profile.load(data.profile("000.00.00.G22"))
    good = ReceiptSigner(data.hub_key.read_bytes(), data.hub_cert.read_bytes()).sign(RECEIPT)
    forged = ReceiptSigner(profile.key.read_bytes(), profile.cert.read_bytes()).sign(RECEIPT)
    for name, text, ok in (("good.xml", good, True), ("forged.xml", forged, False)):
        (tmp_path / name).write_text(text)
        done = subprocess.run(
            [str(BIN / "axis-node"), "--profile", str(profile.root), "verify-receipt",
             str(tmp_path / name)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert (done.returncode == 0) == ok, done.stderr
