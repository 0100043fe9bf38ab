"""One way in for a package: bytes and a policy in, the verified package or an input error out.

Theory of operation. Whatever takes a package from outside (the hub's node API, an agency's
push endpoint, the property tests over both) calls :func:`read_package`, which does, in order:

1. parse with the hardened parser and the policy's limits (:func:`axis.core.xmlsafe.load_xml`:
   size, depth, element count; no DTD, entity, processing instruction or inner comment);
2. validate against the edXML schema of the package's kind (:func:`axis.core.formats.validate`);
3. read ``From/OrganId`` from the still unverified tree, only to ask ``signer_for`` whose
   certificate must have signed it. The hub answers with the registered certificate of the
   agency behind the TLS connection, and refuses a From that names anybody else
   (:func:`registered_signer`); a push endpoint takes the certificate in KeyInfo if it names
   that agency (:func:`key_info_signer`), and the trust store then decides;
4. verify the signature on the tree parsed in step 1 (:class:`axis.core.signing.Verifier`);
5. read the typed package from the signed tree alone (:func:`axis.core.formats.parse_package`),
   whose From must still be the agency whose certificate signed.

The bytes are parsed once, by one parser, and nothing after step 4 sees unsigned content. Every
refusal is an :class:`axis.errors.InputError` that names its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from axis.core import formats, pki
from axis.core.formats import Package
from axis.core.signing import Verifier, signing_cert_of
from axis.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, load_xml
from axis.errors import NotAllowed, SenderMismatch, UntrustedCertificate

#: Given the OrganId a package claims as its sender and its unverified tree, the certificate
#: that must have signed it; raises SenderMismatch or UntrustedCertificate to refuse.
SignerFor = Callable[[str, etree._Element], x509.Certificate]
#: Whether two codes (the one a certificate names, the one a From claims) are one agency's.
SameAgency = Callable[[str, str], bool]


@dataclass(frozen=True)
class IntakePolicy:
    """What a package must satisfy before anybody reads it: the parser's limits, and the
    verifier (the signature policy and the CAs trusted)."""

    verifier: Verifier
    limits: ParseLimits = DEFAULT_LIMITS


def read_package(
    body: bytes, policy: IntakePolicy, signer_for: SignerFor, at: datetime | None = None
) -> Package:
    """The package ``body`` holds, verified at ``at`` (now), as its signed tree says.

    Raises:
        InputError: MalformedXml or TooLarge (step 1), SchemaViolation (2, 5), SenderMismatch
            or UntrustedCertificate (3), InvalidSignature or UntrustedCertificate (4).
    """
    root = load_xml(body, policy.limits)
    formats.validate(root)
    claimed = formats.peek_sender(root)
    certificate = signer_for(claimed, root)
    signed = policy.verifier.verify_tree(root, certificate, at)  # consumes root
    package = formats.parse_package(signed)
    if package.sender.organ_id != claimed:
        raise SenderMismatch(
            f"the signed From/OrganId {package.sender.organ_id} is not {claimed}, who signed"
        )
    return package


def registered_signer(
    organ_id: str, certificate: x509.Certificate, codes: Mapping[str, str | None] | None = None
) -> SignerFor:
    """The hub's rule: a package comes from the agency of the TLS connection (``organ_id``),
    named in From by one of its open ``codes`` (each code it holds → its successor once
    closed; by default its OrganId alone), and is signed with its registered
    ``certificate``; nobody sends on behalf of anybody."""
    held = codes if codes is not None else {organ_id: None}

    def signer_for(claimed: str, root: etree._Element) -> x509.Certificate:
        if claimed not in held:
            raise SenderMismatch(
                f"From/OrganId is {claimed} but the TLS client is {organ_id}"
                f" (its codes: {', '.join(sorted(held))})"
            )
        successor = held[claimed]
        if successor is not None:
            raise NotAllowed(
                f"From/OrganId {claimed} is closed: {successor} succeeds it; send under an"
                " open code"
            )
        return certificate

    return signer_for


def key_info_signer(
    claimed: str, root: etree._Element, same_agency: SameAgency | None = None
) -> x509.Certificate:
    """A push endpoint's rule (it registers nobody): the certificate in KeyInfo, which must
    name the agency the package claims to come from (its code, or with ``same_agency``
    another code of that agency, as the hub's directory says); the verifier's trust store
    then checks that a trusted CA issued it.

    Raises:
        UntrustedCertificate: there is no certificate in KeyInfo.
        SenderMismatch: it names another agency, or none.
    """
    certificate = signing_cert_of(root)
    if certificate is None:
        raise UntrustedCertificate("the package carries no signing certificate")
    named = pki.organ_id_of(certificate)
    if named != claimed and not (named and same_agency and same_agency(named, claimed)):
        raise SenderMismatch(f"the signing certificate does not belong to {claimed}")
    return certificate
