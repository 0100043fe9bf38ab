"""Signed receipts: the hub's proof that it took a package.

A receipt is a small XML document in the Axis namespace, signed by the hub's key (enveloped
XMLDSig, ``Reference URI=""``, the hub certificate in KeyInfo), so that anyone holding the hub's
certificate can check offline which package the hub accepted, with which hash, from whom, for
whom and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from axis.core import pki
from axis.core.signing import checked_public_key, sign_enveloped, verify_whole, xmlsec_private_key
from axis.core.xmlsafe import load_xml
from axis.errors import InvalidSignature, UntrustedCertificate

RECEIPT_NS = "urn:axis:receipt:1"


@dataclass(frozen=True)
class Receipt:
    package_id: str
    sha256: str
    sender: str
    recipients: tuple[str, ...]
    received_at: datetime
    hub: str


def _element(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, f"{{{RECEIPT_NS}}}{name}").text = text


def receipt_tree(r: Receipt) -> etree._Element:
    """The unsigned receipt document."""
    root = etree.Element(f"{{{RECEIPT_NS}}}Receipt", nsmap={"r": RECEIPT_NS})
    _element(root, "PackageId", r.package_id)
    _element(root, "Sha256", r.sha256)
    _element(root, "Sender", r.sender)
    recipients = etree.SubElement(root, f"{{{RECEIPT_NS}}}Recipients")
    for organ_id in r.recipients:
        _element(recipients, "OrganId", organ_id)
    _element(root, "ReceivedAt", r.received_at.isoformat(timespec="milliseconds"))
    _element(root, "Hub", r.hub)
    return root


class ReceiptSigner:
    """Signs receipts with the hub's key (libxmlsec1); the key is loaded once."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        self._ecdsa = not isinstance(pki.load_key(key_pem), rsa.RSAPrivateKey)
        self._key = xmlsec_private_key(key_pem, cert_pem)

    def sign(self, receipt: Receipt) -> str:
        """The signed receipt as a UTF-8 XML string."""
        root = receipt_tree(receipt)
        sign_enveloped(root, root, self._key, self._ecdsa)
        return etree.tostring(root, encoding="unicode")


# Hub certificate → its key, for checking receipts. Keyed by the certificate itself, which
# hashes and compares by its DER as parsed: encoding the DER again for the key cost 16 µs a
# receipt, five receipts a document.
_KEYS: dict[x509.Certificate, xmlsec.Key] = {}
_KEYS_KEPT = 16


def verify_receipt(xml: str | bytes, hub_cert: x509.Certificate) -> Receipt:
    """Check a receipt against the hub's certificate and read it.

    Raises:
        MalformedXml: it is not safe, well-formed XML.
        InvalidSignature: the hub's key did not sign it, or it was changed since.
    """
    data = xml.encode() if isinstance(xml, str) else xml
    key = _KEYS.get(hub_cert)
    if key is None:
        if len(_KEYS) >= _KEYS_KEPT:
            _KEYS.clear()
        try:
            key = checked_public_key(hub_cert)
        except (InvalidSignature, UntrustedCertificate) as exc:
            raise InvalidSignature(f"the receipt does not verify: {exc.detail}") from exc
        _KEYS[hub_cert] = key
    try:
        signed = verify_whole(load_xml(data), key)
    except InvalidSignature as exc:
        raise InvalidSignature(f"the receipt does not verify: {exc.detail}") from exc
    if signed.tag != f"{{{RECEIPT_NS}}}Receipt":
        raise InvalidSignature("the signed content is not a receipt")

    def text(name: str) -> str:
        return signed.findtext(f"{{{RECEIPT_NS}}}{name}") or ""

    return Receipt(
        package_id=text("PackageId"),
        sha256=text("Sha256"),
        sender=text("Sender"),
        recipients=tuple(
            e.text or "" for e in signed.iterfind(f"{{{RECEIPT_NS}}}Recipients/{{*}}OrganId")
        ),
        received_at=datetime.fromisoformat(text("ReceivedAt")),
        hub=text("Hub"),
    )
