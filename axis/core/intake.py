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

from axis.core import conformance, formats, pki
from axis.core.formats import Package
from axis.core.signing import Verifier, signing_cert_of
from axis.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, load_xml
from axis.errors import (
    InvalidSignature,
    Nonconforming,
    NotAllowed,
    SchemaViolation,
    SenderMismatch,
    UntrustedCertificate,
)

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
    max_attachments: int | None = None  # counted before anything is decoded or verified


def read_package(
    body: bytes, policy: IntakePolicy, signer_for: SignerFor, at: datetime | None = None
) -> Package:
    """The package ``body`` holds, verified at ``at`` (now), as its signed tree says.

    Raises:
        InputError: MalformedXml or TooLarge (step 1), SchemaViolation (2, 5), SenderMismatch
            or UntrustedCertificate (3), InvalidSignature or UntrustedCertificate (4).
    """
    root = load_xml(body, policy.limits)
    _count_attachments(root, policy)
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


def _count_attachments(root: etree._Element, policy: IntakePolicy) -> None:
    """Too many attachments are refused before one is decoded, or the signature over all of
    them verified (routing checks the same limit on what it reads)."""
    if policy.max_attachments is None:
        return
    found = sum(
        1 for _ in root.iterfind(f"{{{formats.NS}}}AttachmentEncoded/{{{formats.NS}}}Attachment")
    )
    if found > policy.max_attachments:
        raise SchemaViolation(f"{found} attachments; at most {policy.max_attachments}")


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
        refuse_closed(claimed, held[claimed])
        return certificate

    return signer_for


def refuse_closed(claimed: str, successor: str | None) -> None:
    """Every face's rule: nobody sends under a closed code (``successor``: set once closed).

    Raises NotAllowed naming the successor."""
    if successor is not None:
        raise NotAllowed(
            f"From/OrganId {claimed} is closed: {successor} succeeds it; send under an open code"
        )


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


@dataclass(frozen=True)
class FieldRead:
    """A package as the national axis's face takes it: the package, and the deviations from
    QCVN 102:2016 it was taken with (:mod:`axis.core.conformance`)."""

    package: Package
    deviations: tuple[conformance.Deviation, ...]

    @property
    def signed(self) -> bool:
        return not any(d.rule is conformance.Rule.UNSIGNED for d in self.deviations)


def read_field_package(
    body: bytes,
    policy: IntakePolicy,
    sender_check: Callable[[str], None],
    signer_for: SignerFor,
    *,
    strict: bool,
    require_signature: bool,
    at: datetime | None = None,
) -> FieldRead:
    """A package sent on the national axis's face, which the caller's system vouches for.

    The same steps as :func:`read_package`, with what the real axis tolerates: a package
    without a real signature is read unverified (``require_signature``: refused), and the
    deviations of :mod:`axis.core.conformance` are recorded (``strict``: refused, naming the
    rule). ``sender_check`` refuses a From the caller may not send as; ``signer_for`` gives
    the certificate a signed package must verify with. A package with a real signature is
    verified exactly as :func:`read_package` verifies it.

    Raises:
        InputError: as read_package; Nonconforming naming the rule of a deviation (strict);
            InvalidSignature for an unsigned package (require_signature).
    """
    return read_field_tree(
        load_xml(body, policy.limits),
        policy,
        sender_check,
        signer_for,
        strict=strict,
        require_signature=require_signature,
        at=at,
    )


def read_field_tree(
    root: etree._Element,
    policy: IntakePolicy,
    sender_check: Callable[[str], None],
    signer_for: SignerFor,
    *,
    strict: bool,
    require_signature: bool,
    at: datetime | None = None,
) -> FieldRead:
    """:func:`read_field_package` on a tree :func:`load_xml` parsed from the body (a face
    that must look its sender up first parses once, peeks, looks up, then reads)."""
    _count_attachments(root, policy)
    deviations = conformance.inspect(root)
    unsigned = any(d.rule is conformance.Rule.UNSIGNED for d in deviations)
    if require_signature and unsigned:
        raise InvalidSignature(
            f"unsigned: {conformance.RULES[conformance.Rule.UNSIGNED]}; this hub requires it"
            " on every face ([vdxp] require_signature)"
        )
    # A copy only where something is replaced: a signed package's own tree is verified below.
    readable = conformance.conforming(root, deviations)
    formats.validate(readable)  # first: an address that is no OrganId is refused as such
    if strict and deviations:
        first = deviations[0]
        raise Nonconforming(
            f"QCVN 102:2016: {conformance.RULES[first.rule]} (rule {first.rule}: found"
            f" {first.found}); this face is strict ([vdxp] strict)"
        )
    claimed = formats.peek_sender(readable)
    sender_check(claimed)
    if unsigned:
        package = formats.parse_package(readable)
    else:
        certificate = signer_for(claimed, root)
        signed = policy.verifier.verify_tree(root, certificate, at)
        package = formats.parse_package(conformance.conforming(signed, deviations))
        root = signed
    if package.sender.organ_id != claimed:
        raise SenderMismatch(f"the signed From/OrganId {package.sender.organ_id} is not {claimed}")
    return FieldRead(conformance.restore(package, root, deviations), deviations)
