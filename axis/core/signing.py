"""The XMLDSig layer: sign a package, verify one.

Theory of operation. A package carries exactly one enveloped signature at
``edXMLEnvelope/edXMLHeader/Signature`` whose single ``Reference URI=""`` covers the whole
document, attachments included (SPEC §2). The cryptography is a library's: libxmlsec1's
through python-xmlsec (the default, measured faster: ``axis bench``) or signxml's. This module
only pins down *which* signatures we are willing to ask it about, so that every refusal comes
with a reason a clerk can act on:

1. shape: one ``ds:Signature`` in the whole document, at the one place, one ``Reference``
   with ``URI=""``, no ``ds:Object`` (signature wrapping has nowhere to hide);
2. identity: the certificate in ``KeyInfo`` is byte for byte the sender's registered one, and
   the trust store accepts it at the time of receipt;
3. strength: RSA >= ``min_rsa_bits``, EC on an allowed curve, algorithms the policy accepts;
4. the engine verifies, told the certificate (never trusting the one in the document), with
   every algorithm outside the policy disabled; its errors become ours.

Only the signed tree the verifier returns may be used afterwards: anything else could hold
unsigned data. With signxml it is rebuilt from the canonical bytes that were digested; with
xmlsec it is the verified document less what ``URI=""`` leaves unsigned (the signature itself
and comments), which the checks above make the same thing.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
from base64 import b64decode
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import cryptography.exceptions
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from axis.core.pki import PrivateKey, TrustStore, load_cert, load_key
from axis.core.xmlsafe import load_xml
from axis.errors import InvalidSignature, MalformedXml, SchemaViolation, UntrustedCertificate

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

_DS = f"{{{DS_NS}}}"
_ED = f"{{{EDXML_NS}}}"
_HEADER_PATH = f"./{_ED}edXMLEnvelope/{_ED}edXMLHeader"
SIGNATURE_LOCATION = _HEADER_PATH + "/"
ENVELOPED_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

_STRONG_HASHES = ("SHA256", "SHA384", "SHA512")
_ALL_C14N = frozenset(CanonicalizationMethod)  # 1.0, 1.1, exclusive; with and without comments
_ALLOWED_SIGNATURE_CHILDREN = frozenset({"SignedInfo", "SignatureValue", "KeyInfo"})

# What signxml (and the libraries under it) raise for a signature that does not hold. Anything
# else escaping signxml is a bug and should surface as one.
_SIGNXML_FAILURES: tuple[type[BaseException], ...] = (
    SignXMLException,
    cryptography.exceptions.InvalidSignature,
    etree.LxmlError,
    ValueError,
    KeyError,
    TypeError,  # e.g. b64decode(None) on an empty element signxml expects text in
)


def _signature_methods(allow_sha1: bool) -> frozenset[SignatureMethod]:
    hashes = _STRONG_HASHES + (("SHA1",) if allow_sha1 else ())
    return frozenset(SignatureMethod[f"{kind}_{h}"] for kind in ("RSA", "ECDSA") for h in hashes)


def _digest_algorithms(allow_sha1: bool) -> frozenset[DigestAlgorithm]:
    hashes = _STRONG_HASHES + (("SHA1",) if allow_sha1 else ())
    return frozenset(DigestAlgorithm[h] for h in hashes)


@dataclass(frozen=True)
class VerificationPolicy:
    """What the hub accepts in a signature (SPEC §2). Derived sets are computed once."""

    allow_sha1: bool = False
    min_rsa_bits: int = 2048
    allowed_curves: frozenset[str] = frozenset({"secp256r1", "secp384r1"})
    c14n_methods: frozenset[CanonicalizationMethod] = _ALL_C14N
    signature_methods: frozenset[SignatureMethod] = field(init=False)
    digest_algorithms: frozenset[DigestAlgorithm] = field(init=False)
    _config: SignatureConfiguration = field(init=False, repr=False, compare=False)
    # The URIs of what is accepted, as packages name them: every signature checks against
    # these (sets of the enums' values, made per check, were a tenth of the checks' own cost).
    signature_uris: frozenset[str] = field(init=False, repr=False, compare=False)
    digest_uris: frozenset[str] = field(init=False, repr=False, compare=False)
    c14n_uris: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the derived fields are set once here, never changed afterwards.
        methods = _signature_methods(self.allow_sha1)
        digests = _digest_algorithms(self.allow_sha1)
        config = SignatureConfiguration(
            require_x509=True,
            location=SIGNATURE_LOCATION,
            expect_references=1,
            signature_methods=methods,
            digest_algorithms=digests,
        )
        object.__setattr__(self, "signature_methods", methods)
        object.__setattr__(self, "digest_algorithms", digests)
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "signature_uris", frozenset(m.value for m in methods))
        object.__setattr__(self, "digest_uris", frozenset(d.value for d in digests))
        object.__setattr__(self, "c14n_uris", frozenset(m.value for m in self.c14n_methods))

    def signature_config(self) -> SignatureConfiguration:
        """The signxml configuration for this policy (verification time unset: now)."""
        return self._config


def _reparser() -> etree.XMLParser:
    """The parser signxml re-parses with: only ever bytes of a tree that Axis built itself or
    that :func:`axis.core.xmlsafe.load_xml` parsed already (bytes from outside go through
    that, with its limits, and nowhere else). No entity, no DTD, no network; ``huge_tree``
    because a scanned attachment is one base64 text node, often over libxml2's 10 MB.
    A new parser per use: lxml parsers must not be shared between threads."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


class _XMLSigner(XMLSigner):
    """signxml's signer re-parses the document with its own parser; make it ours, so that
    big attachments sign as they verify."""

    @property
    def parser(self) -> etree.XMLParser:
        return _reparser()


def _signature_method_for(key: PrivateKey, digest: str) -> SignatureMethod:
    kind = "RSA" if isinstance(key, rsa.RSAPrivateKey) else "ECDSA"
    return SignatureMethod[f"{kind}_{digest.upper()}"]


class Signer:
    """Signs packages as one agency (or the hub): key and certificate are loaded once.

    ``engine``: the XMLDSig library that signs, as :class:`Verifier` has one that checks:
    libxmlsec1 (``xmlsec``, the default: 0.61 ms of CPU for a 20 KB package against 0.80
    ms, measured on this project's machine) or ``signxml``; both write the same layout, and
    each verifies the other's."""

    def __init__(
        self,
        key_pem: bytes,
        cert_pem: bytes,
        digest: str = "sha256",
        engine: VerifierEngine | str = "xmlsec",
    ) -> None:
        """Raises AxisError / UntrustedCertificate for bad PEM, ValueError for a bad digest
        or engine."""
        if digest.upper() not in _STRONG_HASHES:
            raise ValueError(f"unsupported digest {digest!r} (sha256, sha384 or sha512)")
        self.engine = VerifierEngine(engine)
        self._key = load_key(key_pem)
        self.cert = load_cert(cert_pem)
        self._method = _signature_method_for(self._key, digest)
        self._digest = DigestAlgorithm[digest.upper()]
        self._xmlsec_key = (
            xmlsec_private_key(key_pem, cert_pem) if self.engine is VerifierEngine.XMLSEC else None
        )

    def sign(self, root: etree._Element) -> bytes:
        """Sign an edXML document: enveloped, ``Reference URI=""``, exclusive C14N, the
        signature as the last child of ``edXMLHeader``. ``root`` is left untouched.

        Returns the signed document, UTF-8 with an XML declaration. Raises SchemaViolation if
        there is no ``edXMLEnvelope/edXMLHeader``, InvalidSignature if it is already signed.
        """
        doc = copy.deepcopy(root)
        header = doc.find(_HEADER_PATH)
        if header is None:
            raise SchemaViolation("no edXMLEnvelope/edXMLHeader to hold the signature")
        if next(doc.iter(f"{_DS}Signature"), None) is not None:
            raise InvalidSignature("the document is already signed")
        if self._xmlsec_key is not None:
            ecdsa = isinstance(self._key, ec.EllipticCurvePrivateKey)
            sign_enveloped(doc, header, self._xmlsec_key, ecdsa, self._digest.name)
            return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
        _append_placeholder(header)
        # One XMLSigner per call: it keeps per-call state, and building one costs nothing.
        signer = _XMLSigner(
            signature_algorithm=self._method,
            digest_algorithm=self._digest,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        # The parsed certificate, not PEM: signxml would re-parse PEM on every call.
        signed = signer.sign(doc, key=self._key, cert=[self.cert])
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _append_placeholder(header: etree._Element) -> None:
    """signxml replaces ``<ds:Signature Id="placeholder"/>`` by the real signature, in place."""
    placeholder = etree.SubElement(header, f"{_DS}Signature", nsmap={"ds": DS_NS})
    placeholder.set("Id", "placeholder")
    # Keep the indentation of a pretty-printed header (whitespace is signed either way).
    previous = placeholder.getprevious()
    if previous is not None:
        placeholder.tail, previous.tail = previous.tail, header.text


class VerifierEngine(StrEnum):
    """The XMLDSig libraries that can check a signature once this module's checks pass."""

    XMLSEC = "xmlsec"  # python-xmlsec: libxmlsec1, in C (the default: faster)
    SIGNXML = "signxml"  # pure Python over lxml and cryptography


class Verifier:
    """Verifies packages against one policy and one trust store (both fixed at creation).

    ``engine`` is the XMLDSig library that checks the digest and the signature value once the
    checks of this module have passed: ``"xmlsec"`` (python-xmlsec, libxmlsec1 in C; the
    default, as it is faster) or ``"signxml"``. Both see the same policy and both answer with
    the signed tree only; the signature tests run against each.
    """

    def __init__(
        self,
        policy: VerificationPolicy,
        trust: TrustStore,
        engine: VerifierEngine | str = VerifierEngine.XMLSEC,
    ):
        """Raises ValueError for an engine that is not one of :class:`VerifierEngine`."""
        try:
            self.engine = VerifierEngine(engine)
        except ValueError:
            raise ValueError(f"unknown verifier engine {engine!r} (xmlsec or signxml)") from None
        self.policy = policy
        self.trust = trust
        # Certificate DER -> the xmlsec key made from it (the context copies it on use).
        self._xmlsec_keys: dict[bytes, xmlsec.Key] = {}
        # The transforms the policy allows, worked out once rather than per package.
        self._reference_transforms = _xmlsec_transforms(policy, reference=True)
        self._signature_transforms = _xmlsec_transforms(policy, reference=False)

    def verify(
        self, data: bytes, expected_cert: x509.Certificate, at: dt.datetime | None = None
    ) -> etree._Element:
        """Verify ``data``, signed by the holder of ``expected_cert``, at time ``at`` (now).

        ``data`` is parsed by :func:`axis.core.xmlsafe.load_xml` with its default limits; to
        read a package with a policy's own limits, use :func:`axis.core.intake.read_package`.

        Returns the signed tree (without the signature): the only tree to use afterwards.
        Raises MalformedXml or TooLarge (the parser refused it), InvalidSignature (shape,
        algorithm, key strength, digest or signature value) or UntrustedCertificate (not the
        registered certificate, not trusted, not valid at ``at``).
        """
        return self.verify_tree(load_xml(data), expected_cert, at)

    def verify_tree(
        self, root: etree._Element, expected_cert: x509.Certificate, at: dt.datetime | None = None
    ) -> etree._Element:
        """:meth:`verify` for a document the caller has parsed already (with
        :func:`axis.core.xmlsafe.load_xml`), so that the bytes are parsed once. ``root`` is
        consumed: use only the tree returned. The checks here do not rely on that parser:
        a DOCTYPE is refused, and comments are left out of the signed tree."""
        at = at if at is not None else dt.datetime.now(dt.UTC)
        if root.getroottree().docinfo.internalDTD is not None:
            raise MalformedXml("a DOCTYPE is not allowed in a package")
        signature = _the_signature(root)
        _check_reference(signature)
        _check_key_info(signature, expected_cert)
        self.trust.check(expected_cert, at)
        check_key_strength(expected_cert, self.policy)
        _check_algorithms(signature, self.policy)
        if self.engine is VerifierEngine.XMLSEC:
            return self._xmlsec_verify(root, signature, expected_cert)
        result = self._signxml_verify(root, expected_cert, at)
        if result.signed_xml is None:
            raise InvalidSignature("the signed content is not XML")
        return result.signed_xml

    def _xmlsec_verify(
        self, root: etree._Element, signature: etree._Element, cert: x509.Certificate
    ) -> etree._Element:
        """libxmlsec1 checks the one Reference and the SignatureValue with the registered
        certificate's key (never the document's KeyInfo), every transform and algorithm
        outside the policy disabled. Then the signed tree is the document itself less what
        ``URI=""`` with these transforms leaves out: the signature (enveloped) and comments
        (C14N without comments). Comments must go: ``<Subject>A<!---->B</Subject>`` is signed
        as "AB", but lxml's ``.text`` would read "A"."""
        der = cert.public_bytes(Encoding.DER)
        key = self._xmlsec_keys.get(der)
        if key is None:
            key = self._xmlsec_keys[der] = xmlsec_public_key(cert)
        return _xmlsec_check(
            root, signature, key, self._reference_transforms, self._signature_transforms
        )

    def _signxml_verify(
        self, root: etree._Element, cert: x509.Certificate, at: dt.datetime
    ) -> VerifyResult:
        config = replace(self.policy.signature_config(), verification_time=at)
        try:
            result = XMLVerifier().verify(
                root, x509_cert=cert, expect_config=config, parser=_reparser()
            )
        except InvalidCertificate as exc:
            raise UntrustedCertificate(f"signing certificate refused: {exc}") from exc
        except _SIGNXML_FAILURES as exc:
            raise InvalidSignature(f"signature check failed: {exc}") from exc
        if not isinstance(result, VerifyResult):  # expect_references=1 makes it one result
            raise InvalidSignature("expected exactly one signed reference")
        return result


def xmlsec_public_key(cert: x509.Certificate) -> xmlsec.Key:
    """libxmlsec1's key for checking signatures made with ``cert``'s key: the public key
    alone. Every check copies its key into a fresh context; a key loaded from the whole
    certificate carries it along, and the copy cost 50 µs against 0.5 for the bare key, as
    much as the signature check itself. The certificate is ours to judge (the trust store,
    :func:`check_key_strength`), never libxmlsec1's.

    Raises UntrustedCertificate: libxmlsec1 cannot use it."""
    try:
        return xmlsec.Key.from_memory(
            cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            xmlsec.constants.KeyDataFormatDer,
        )
    except xmlsec.Error as exc:
        raise UntrustedCertificate(f"signing certificate refused: {exc}") from exc


def _xmlsec_check(
    root: etree._Element,
    signature: etree._Element,
    key: xmlsec.Key,
    reference_transforms: list[Any],
    signature_transforms: list[Any],
) -> etree._Element:
    """libxmlsec1 checks the one Reference and the SignatureValue with ``key``, every
    transform outside the lists disabled; then the signed tree is ``root`` less what
    ``URI=""`` with these transforms leaves out: the signature and comments."""
    context = xmlsec.SignatureContext()
    context.key = key  # copied into the context: one key serves every thread
    for transform in reference_transforms:
        context.enable_reference_transform(transform)
    for transform in signature_transforms:
        context.enable_signature_transform(transform)
    try:
        context.verify(signature)
    except xmlsec.Error as exc:
        raise InvalidSignature(f"signature check failed: {exc}") from exc
    parent = signature.getparent()
    assert parent is not None  # the caller found it inside root
    parent.remove(signature)
    etree.strip_tags(root, etree.Comment)
    return root


def checked_public_key(cert: x509.Certificate) -> xmlsec.Key:
    """:func:`xmlsec_public_key` of a certificate whose key the default policy takes (for
    :func:`verify_whole`: checked once, when the key is made, not per signature).

    Raises:
        InvalidSignature: the key is too weak or of a kind not accepted.
        UntrustedCertificate: libxmlsec1 cannot use it."""
    check_key_strength(cert, _DEFAULT_POLICY)
    return xmlsec_public_key(cert)


def verify_whole(root: etree._Element, key: xmlsec.Key) -> etree._Element:
    """An enveloped signature over the whole of ``root`` (its last child; one Reference,
    ``URI=""``), made with ``key`` (:func:`checked_public_key`), under the default policy's
    algorithms, checked by libxmlsec1: what a receipt carries. ``root`` is consumed; the
    signed tree is returned.

    Raises:
        InvalidSignature: the shape, an algorithm or the signature is wrong."""
    signatures = list(root.iter(f"{_DS}Signature"))
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise InvalidSignature("expected one ds:Signature, a child of the document element")
    signature = signatures[0]
    _check_reference(signature)
    _check_algorithms(signature, _DEFAULT_POLICY)
    return _xmlsec_check(root, signature, key, *_DEFAULT_TRANSFORMS)


@dataclass(frozen=True)
class XmlsecSigningKey:
    """libxmlsec1's signing key, bare, and its certificate as KeyInfo carries it.

    The certificate is written into the template rather than loaded into the key: each
    signature copies its key into a fresh context, and a key that carried its certificate
    cost 44 µs a copy against 0.4 for the bare key (measured, libxmlsec1 duplicates the
    certificate). libxmlsec1 leaves an X509Certificate that is filled already as it is."""

    key: xmlsec.Key
    certificate: str  # base64 DER in lines of 64, as libxmlsec1 writes it


def sign_enveloped(
    doc: etree._Element,
    parent: etree._Element,
    key: XmlsecSigningKey,
    ecdsa: bool,
    digest: str = "SHA256",
) -> None:
    """Sign ``doc`` in place with libxmlsec1: an enveloped signature appended to ``parent``,
    ``Reference URI=""`` (the whole document), exclusive C14N, ``digest`` (SHA256, SHA384 or
    SHA512) with ECDSA or RSA, ``key``'s certificate in KeyInfo/X509Data (the layout signxml
    writes)."""
    c = xmlsec.constants
    bits = digest.upper().removeprefix("SHA")
    method = getattr(c, f"Transform{'Ecdsa' if ecdsa else 'Rsa'}Sha{bits}")
    signature = xmlsec.template.create(doc, c.TransformExclC14N, method, ns="ds")
    parent.append(signature)
    reference = xmlsec.template.add_reference(signature, getattr(c, f"TransformSha{bits}"), uri="")
    xmlsec.template.add_transform(reference, c.TransformEnveloped)
    xmlsec.template.add_transform(reference, c.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    certificate = xmlsec.template.add_x509_data(key_info)
    xmlsec.template.x509_data_add_certificate(certificate).text = key.certificate
    context = xmlsec.SignatureContext()
    context.key = key.key
    context.sign(signature)


def xmlsec_private_key(key_pem: bytes, cert_pem: bytes) -> XmlsecSigningKey:
    """libxmlsec1's signing key, with its certificate for KeyInfo."""
    key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    der = base64.b64encode(load_cert(cert_pem).public_bytes(Encoding.DER)).decode()
    lines = [der[i : i + 64] for i in range(0, len(der), 64)]
    return XmlsecSigningKey(key, "\n".join(lines) + "\n")


def _xmlsec_transforms(policy: VerificationPolicy, reference: bool) -> list[Any]:
    """The libxmlsec1 transforms the policy allows: in a Reference, the enveloped transform,
    the canonicalizations and the digests; in SignedInfo, the canonicalizations and the
    signature methods (with the digests they use)."""
    allowed = policy.c14n_uris | policy.digest_uris
    allowed |= {ENVELOPED_TRANSFORM} if reference else policy.signature_uris
    return [t for t in _XMLSEC_TRANSFORMS if t.href in allowed]


_XMLSEC_TRANSFORMS = tuple(
    value
    for name, value in vars(xmlsec.constants).items()
    if name.startswith("Transform") and getattr(value, "href", None)
)
_DEFAULT_POLICY = VerificationPolicy()
# What verify_whole enables: in the Reference, then in SignedInfo.
_DEFAULT_TRANSFORMS = (
    _xmlsec_transforms(_DEFAULT_POLICY, reference=True),
    _xmlsec_transforms(_DEFAULT_POLICY, reference=False),
)


def _the_signature(root: etree._Element) -> etree._Element:
    signatures = list(root.iter(f"{_DS}Signature"))
    if len(signatures) != 1:
        raise InvalidSignature(f"expected exactly one ds:Signature, found {len(signatures)}")
    signature = signatures[0]
    header = root.find(_HEADER_PATH)
    if root.tag != f"{_ED}edXML" or header is None or signature.getparent() is not header:
        raise InvalidSignature("the ds:Signature must be at edXML/edXMLEnvelope/edXMLHeader")
    for child in signature:
        local = etree.QName(child).localname if isinstance(child.tag, str) else None
        if child.tag != f"{_DS}{local}" or local not in _ALLOWED_SIGNATURE_CHILDREN:
            raise InvalidSignature(f"unexpected element {child.tag!r} in ds:Signature")
    value = signature.find(f"{_DS}SignatureValue")
    if value is None or not (value.text or "").strip():
        raise InvalidSignature("the ds:SignatureValue is missing or empty")
    return signature


def _check_reference(signature: etree._Element) -> None:
    references = signature.findall(f"{_DS}SignedInfo/{_DS}Reference")
    if len(references) != 1:
        raise InvalidSignature(f"expected exactly one ds:Reference, found {len(references)}")
    uri = references[0].get("URI")
    if uri != "":
        raise InvalidSignature(f'the ds:Reference must have URI="" (whole document), not {uri!r}')


def _check_key_info(signature: etree._Element, expected: x509.Certificate) -> None:
    certs = signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if len(certs) != 1:
        raise UntrustedCertificate(
            f"KeyInfo/X509Data must hold exactly one X509Certificate, found {len(certs)}"
        )
    try:
        der = b64decode("".join((certs[0].text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UntrustedCertificate("the X509Certificate in KeyInfo is not base64") from exc
    if der != expected.public_bytes(Encoding.DER):
        raise UntrustedCertificate(
            "the signing certificate is not the sender's registered certificate"
        )


def check_key_strength(cert: x509.Certificate, policy: VerificationPolicy) -> None:
    """Refuse a signing key the policy does not take (RSA below ``min_rsa_bits``, a curve
    not allowed, DSA, Ed25519 or anything else): InvalidSignature naming it."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < policy.min_rsa_bits:
            raise InvalidSignature(
                f"RSA key of {key.key_size} bits is too weak (minimum {policy.min_rsa_bits})"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in policy.allowed_curves:
            allowed = ", ".join(sorted(policy.allowed_curves))
            raise InvalidSignature(f"EC curve {key.curve.name} is not accepted ({allowed})")
    else:
        raise InvalidSignature(f"unsupported signing key type {type(key).__name__}")


def _algorithm_of(element: etree._Element | None, what: str) -> str:
    algorithm = element.get("Algorithm") if element is not None else None
    if algorithm is None:
        raise InvalidSignature(f"{what} has no Algorithm")
    return algorithm


def _named(uri: str) -> str:
    """``RSA_SHA1 (http://…#rsa-sha1)`` for a known algorithm URI, the URI alone otherwise."""
    for enum in (SignatureMethod, DigestAlgorithm, CanonicalizationMethod):
        for member in enum:
            if member.value == uri:
                return f"{member.name} ({uri})"
    return uri


def _check_algorithms(signature: etree._Element, policy: VerificationPolicy) -> None:
    """Refuse, by name, every algorithm the policy does not accept, before any crypto runs."""
    signed_info = signature.find(f"{_DS}SignedInfo")
    if signed_info is None:
        raise InvalidSignature("ds:SignedInfo is missing")
    sm = _algorithm_of(signed_info.find(f"{_DS}SignatureMethod"), "SignatureMethod")
    if sm not in policy.signature_uris:
        raise InvalidSignature(f"signature algorithm not accepted: {_named(sm)}")
    cm = _algorithm_of(signed_info.find(f"{_DS}CanonicalizationMethod"), "CanonicalizationMethod")
    c14n = policy.c14n_uris
    if cm not in c14n:
        raise InvalidSignature(f"canonicalization not accepted: {_named(cm)}")
    reference = signed_info.find(f"{_DS}Reference")
    dm = _algorithm_of(
        reference.find(f"{_DS}DigestMethod") if reference is not None else None, "DigestMethod"
    )
    if dm not in policy.digest_uris:
        raise InvalidSignature(f"digest algorithm not accepted: {_named(dm)}")
    transforms = signed_info.findall(f"{_DS}Reference/{_DS}Transforms/{_DS}Transform")
    algorithms = [_algorithm_of(t, "Transform") for t in transforms]
    if ENVELOPED_TRANSFORM not in algorithms:
        raise InvalidSignature("the enveloped-signature transform is missing")
    for algorithm in algorithms:
        # signxml silently skips transforms it does not know; we refuse them instead.
        if algorithm != ENVELOPED_TRANSFORM and algorithm not in c14n:
            raise InvalidSignature(f"transform not accepted: {algorithm}")


def signing_cert_of(data_root: etree._Element) -> x509.Certificate | None:
    """The certificate in the first signature's KeyInfo, for diagnostics only (not trusted)."""
    element = data_root.find(f".//{_DS}Signature/{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if element is None or not element.text:
        return None
    try:
        return x509.load_der_x509_certificate(b64decode("".join(element.text.split())))
    except ValueError:
        return None
