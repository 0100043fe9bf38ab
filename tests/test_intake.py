"""The one intake path (axis.core.intake), on the interop samples signed by xmlsec1 under an
outside CA: who may have signed, which limits hold, and that no second parser reads outside
bytes."""

from __future__ import annotations

import pytest
from cryptography import x509

from axis.core import formats, pki
from axis.core.intake import IntakePolicy, key_info_signer, read_package, registered_signer
from axis.core.signing import VerificationPolicy, Verifier
from axis.core.xmlsafe import ParseLimits
from axis.errors import MalformedXml, SenderMismatch, TooLarge, UntrustedCertificate
from tests.helpers import SAMPLES

G22, H41 = "000.00.00.G22", "000.00.00.H41"
EDOC = (SAMPLES / "edoc-signed.xml").read_bytes()
VERIFIER = Verifier(
    VerificationPolicy(), pki.TrustStore.from_pem_files([SAMPLES / "outside-ca.pem"])
)
POLICY = IntakePolicy(VERIFIER)


def cert(organ_id: str) -> x509.Certificate:
    return pki.load_cert((SAMPLES / f"{organ_id}.pem").read_bytes())


def test_a_package_reads_the_same_by_either_rule() -> None:
    by_tls = read_package(EDOC, POLICY, registered_signer(G22, cert(G22)))
    by_key_info = read_package(EDOC, POLICY, key_info_signer)
    assert isinstance(by_tls, formats.Edoc) and by_tls == by_key_info
    assert by_tls.sender.organ_id == G22


def test_nobody_sends_on_behalf_of_another_agency() -> None:
    with pytest.raises(SenderMismatch, match=f"From/OrganId is {G22} but the TLS client is {H41}"):
        read_package(EDOC, POLICY, registered_signer(H41, cert(H41)))


def test_a_push_endpoint_wants_a_certificate_that_names_the_sender() -> None:
    root = formats.load_xml(EDOC)
    assert key_info_signer(G22, root) == cert(G22)
    with pytest.raises(SenderMismatch, match=f"does not belong to {H41}"):
        key_info_signer(H41, root)
    x509_certificate = next(root.iter(f"{{{formats.DS_NS}}}X509Certificate"))
    x509_certificate.getparent().remove(x509_certificate)  # type: ignore[union-attr]
    with pytest.raises(UntrustedCertificate, match="no signing certificate"):
        key_info_signer(G22, root)


def test_the_policys_limits_hold_before_anything_else() -> None:
    tight = IntakePolicy(VERIFIER, ParseLimits(max_bytes=len(EDOC) - 1))
    with pytest.raises(TooLarge):
        read_package(EDOC, tight, registered_signer(G22, cert(G22)))
    shallow = IntakePolicy(VERIFIER, ParseLimits(max_depth=3))
    with pytest.raises(MalformedXml, match="nested deeper than 3"):
        read_package(EDOC, shallow, key_info_signer)


def test_the_verifier_reads_bytes_with_the_same_hardened_parser() -> None:
    """Verifier.verify(bytes) once had a parser of its own, with no depth or element limit:
    nesting past the limit is now refused by the parser, before any signature work."""
    deep = b"<a>" * 100 + b"</a>" * 100
    nested = EDOC.replace(b"</edXML>", b"<x>" + deep + b"</x></edXML>")
    with pytest.raises(MalformedXml, match="nested deeper than 64"):
        VERIFIER.verify(nested, cert(G22))
