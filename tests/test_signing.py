"""The XMLDSig layer (axis.core.signing): interop vectors, round trips, every refusal."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from axis.core import formats, pki
from axis.core.clock import utc_now  # per check: a time read at import goes stale
from axis.core.signing import DS_NS, Signer, VerificationPolicy, Verifier, signing_cert_of
from axis.errors import InvalidSignature, MalformedXml, SchemaViolation, UntrustedCertificate
from tests.helpers import SAMPLES, self_signed_cert

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = f"{{{DS_NS}}}"
ED = f"{{{NS}}}"
HEADER = f"./{ED}edXMLEnvelope/{ED}edXMLHeader"


Pair = tuple[pki.PrivateKey, x509.Certificate]


# --- fixtures and helpers ----------------------------------------------------------------


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_cert(organ_id: str) -> x509.Certificate:
    return pki.load_cert(sample(f"{organ_id}.pem"))


def unsigned_edoc() -> etree._Element:
    """The sample edoc with its signature taken off: a realistic package to sign."""
    root = etree.fromstring(sample("edoc-signed.xml"))
    for sig in root.iter(f"{DS}Signature"):
        parent = sig.getparent()
        assert parent is not None
        parent.remove(sig)
    return root


@pytest.fixture(scope="module")
def ca() -> Pair:
    return pki.create_ca("Axis test CA")


@pytest.fixture(scope="module")
def rsa_agency(ca: Pair) -> Pair:
    return pki.issue_agency_cert(*ca, "000.00.00.G22", "Văn phòng Chính phủ")


@pytest.fixture(scope="module")
def ec_agency(ca: Pair) -> Pair:
    return pki.issue_agency_cert(*ca, "000.00.00.H41", "UBND Nghệ An", key=pki.new_key("ec"))


@pytest.fixture(scope="module", params=["xmlsec", "signxml"])
def engine(request: pytest.FixtureRequest) -> str:
    """Every signature test runs against both XMLDSig engines behind Verifier."""
    return str(request.param)


@pytest.fixture(scope="module")
def verifier(ca: Pair, engine: str) -> Verifier:
    return Verifier(VerificationPolicy(), pki.TrustStore((ca[1],)), engine)


@pytest.fixture(scope="module")
def outside_verifier(engine: str) -> Verifier:
    return Verifier(
        VerificationPolicy(), pki.TrustStore.from_pem_files([SAMPLES / "outside-ca.pem"]), engine
    )


def signer_for(pair: Pair, engine: str = "xmlsec") -> Signer:
    return Signer(pki.key_to_pem(pair[0]), pki.cert_to_pem(pair[1]), engine=engine)


def sign(pair: Pair, root: etree._Element | None = None, engine: str = "xmlsec") -> bytes:
    return signer_for(pair, engine).sign(unsigned_edoc() if root is None else root)


def with_placeholder(root: etree._Element) -> etree._Element:
    header = root.find(HEADER)
    assert header is not None
    etree.SubElement(header, f"{DS}Signature", nsmap={"ds": DS_NS}).set("Id", "placeholder")
    return root


class AnyAlgorithmSigner(XMLSigner):
    """signxml refuses to *make* SHA-1 signatures; old agency software still does."""

    def check_deprecated_methods(self) -> None:
        pass


def signxml_sign(pair: Pair, root: etree._Element, **kwargs: object) -> bytes:
    """Sign with signxml directly, for signatures our Signer would never make."""
    reference_uri = kwargs.pop("reference_uri", None)
    signer = AnyAlgorithmSigner(**kwargs)  # type: ignore[arg-type]
    signed = signer.sign(
        with_placeholder(root),
        key=pair[0],
        cert=[pki.cert_to_pem(pair[1]).decode()],
        reference_uri=reference_uri,  # type: ignore[arg-type]
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def edit(data: bytes, change: str) -> bytes:
    """Re-serialize after applying one named change to the parsed package."""
    root = etree.fromstring(data)
    if change == "subject":
        subject = root.find(f".//{ED}Subject")
        assert subject is not None
        subject.text = (subject.text or "") + "!"
    elif change == "attachment":
        blob = root.find(f".//{ED}ContentTransferEncoded")
        assert blob is not None and blob.text
        first = "B" if blob.text[0] != "B" else "C"
        blob.text = first + blob.text[1:]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def self_signed_pair() -> Pair:
    return self_signed_cert("000.00.00.G22")


# --- interop vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "organ_id"),
    [("edoc-signed.xml", "000.00.00.G22"), ("status-signed.xml", "000.00.00.H41")],
)
def test_samples_verify(outside_verifier: Verifier, name: str, organ_id: str) -> None:
    signed = outside_verifier.verify(sample(name), sample_cert(organ_id))
    assert signed.tag == f"{ED}edXML"
    # The returned tree is what was signed: the signature itself is not part of it.
    assert next(signed.iter(f"{DS}Signature"), None) is None
    assert signed.findtext(f".//{ED}From/{ED}OrganId") == organ_id


@pytest.mark.parametrize("change", ["subject", "attachment"])
def test_sample_tampered(outside_verifier: Verifier, change: str) -> None:
    with pytest.raises(InvalidSignature):
        outside_verifier.verify(
            edit(sample("edoc-signed.xml"), change), sample_cert("000.00.00.G22")
        )


def test_sample_with_other_registered_cert(outside_verifier: Verifier) -> None:
    with pytest.raises(UntrustedCertificate, match="not the sender's registered certificate"):
        outside_verifier.verify(sample("edoc-signed.xml"), sample_cert("000.00.00.H41"))


def test_sample_not_trusted_without_outside_ca(verifier: Verifier) -> None:
    with pytest.raises(UntrustedCertificate, match="trusted CA"):
        verifier.verify(sample("edoc-signed.xml"), sample_cert("000.00.00.G22"))


def test_signing_cert_of() -> None:
    root = etree.fromstring(sample("edoc-signed.xml"))
    assert signing_cert_of(root) == sample_cert("000.00.00.G22")
    assert signing_cert_of(unsigned_edoc()) is None


# --- our own signatures ------------------------------------------------------------------


@pytest.mark.parametrize("signing", ["xmlsec", "signxml"])  # each engine verifies the other's
@pytest.mark.parametrize(
    ("agency", "method"),
    [("rsa_agency", SignatureMethod.RSA_SHA256), ("ec_agency", SignatureMethod.ECDSA_SHA256)],
)
def test_round_trip(
    request: pytest.FixtureRequest,
    verifier: Verifier,
    agency: str,
    method: SignatureMethod,
    signing: str,
) -> None:
    pair: Pair = request.getfixturevalue(agency)
    data = sign(pair, engine=signing)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(data)
    header = root.find(HEADER)
    assert header is not None and header[-1].tag == f"{DS}Signature"
    assert len(list(root.iter(f"{DS}Signature"))) == 1
    assert root.find(f".//{DS}SignatureMethod").get("Algorithm") == method.value  # type: ignore[union-attr]
    assert root.find(f".//{DS}Reference").get("URI") == ""  # type: ignore[union-attr]
    signed = verifier.verify(data, pair[1])
    assert signed.findtext(f".//{ED}Subject") == unsigned_edoc().findtext(f".//{ED}Subject")
    assert signed.find(f".//{ED}ContentTransferEncoded") is not None


@pytest.mark.parametrize("signing", ["xmlsec", "signxml"])
@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_round_trip_other_digests(
    verifier: Verifier, rsa_agency: Pair, ec_agency: Pair, digest: str, signing: str
) -> None:
    for pair in (rsa_agency, ec_agency):
        key, cert = pki.key_to_pem(pair[0]), pki.cert_to_pem(pair[1])
        signed = Signer(key, cert, digest=digest, engine=signing).sign(unsigned_edoc())
        assert f"sha{digest[3:]}".encode() in signed
        verifier.verify(signed, pair[1])


def test_signer_refuses_sha1(rsa_agency: Pair) -> None:
    with pytest.raises(ValueError):
        Signer(pki.key_to_pem(rsa_agency[0]), pki.cert_to_pem(rsa_agency[1]), digest="sha1")


def test_sign_does_not_mutate(rsa_agency: Pair) -> None:
    root = unsigned_edoc()
    before = etree.tostring(root)
    sign(rsa_agency, root)
    assert etree.tostring(root) == before


def test_sign_small_inline_status(verifier: Verifier, rsa_agency: Pair) -> None:
    root = etree.fromstring(
        f"""<edXML xmlns="{NS}"><edXMLEnvelope><edXMLHeader><MessageHeader>
        <From><OrganId>000.00.00.G22</OrganId></From><StatusCode>01</StatusCode>
        </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>""".encode()
    )
    signed = verifier.verify(sign(rsa_agency, root), rsa_agency[1])
    assert signed.findtext(f".//{ED}StatusCode") == "01"


def test_sign_refuses_without_header(rsa_agency: Pair) -> None:
    with pytest.raises(SchemaViolation):
        sign(rsa_agency, etree.fromstring(f'<edXML xmlns="{NS}"/>'.encode()))


def test_sign_refuses_signed_document(rsa_agency: Pair) -> None:
    with pytest.raises(InvalidSignature, match="already signed"):
        sign(rsa_agency, etree.fromstring(sample("edoc-signed.xml")))


@pytest.mark.parametrize("change", ["subject", "attachment"])
def test_own_tampered(verifier: Verifier, rsa_agency: Pair, change: str) -> None:
    with pytest.raises(InvalidSignature):
        verifier.verify(edit(sign(rsa_agency), change), rsa_agency[1])


def test_tampered_signature_value(verifier: Verifier, ec_agency: Pair) -> None:
    root = etree.fromstring(sign(ec_agency))
    value = root.find(f".//{DS}SignatureValue")
    assert value is not None and value.text
    value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    with pytest.raises(InvalidSignature):
        verifier.verify(etree.tostring(root), ec_agency[1])


# --- identity and trust ------------------------------------------------------------------


def test_foreign_ca(verifier: Verifier) -> None:
    foreign = pki.issue_agency_cert(*pki.create_ca("Other CA"), "000.00.00.G22", "x")
    with pytest.raises(UntrustedCertificate, match="trusted CA"):
        verifier.verify(sign(foreign), foreign[1])


def test_self_signed(verifier: Verifier) -> None:
    pair = self_signed_pair()
    with pytest.raises(UntrustedCertificate, match="self-signed"):
        verifier.verify(sign(pair), pair[1])


def test_key_info_is_not_the_expected_cert(
    verifier: Verifier, rsa_agency: Pair, ec_agency: Pair
) -> None:
    with pytest.raises(UntrustedCertificate, match="not the sender's registered certificate"):
        verifier.verify(sign(rsa_agency), ec_agency[1])


def test_key_info_with_extra_cert(verifier: Verifier, ca: Pair, rsa_agency: Pair) -> None:
    root = etree.fromstring(sign(rsa_agency))
    x509_data = root.find(f".//{DS}X509Data")
    assert x509_data is not None
    extra = etree.SubElement(x509_data, f"{DS}X509Certificate")
    extra.text = "".join(pki.cert_to_pem(ca[1]).decode().splitlines()[1:-1])
    with pytest.raises(UntrustedCertificate, match="exactly one X509Certificate"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


def test_expired_cert(verifier: Verifier, ca: Pair) -> None:
    pair = pki.issue_agency_cert(*ca, "000.00.00.H10", "UBND Hà Nội", valid_days=1)
    data = sign(pair)
    verifier.verify(data, pair[1], at=utc_now())
    with pytest.raises(UntrustedCertificate, match="expired"):
        verifier.verify(data, pair[1], at=utc_now() + dt.timedelta(days=2))


# --- algorithms and key strength ---------------------------------------------------------


def test_sha1_refused_by_default_and_allowed_on_request(
    ca: Pair, rsa_agency: Pair, engine: str
) -> None:
    data = signxml_sign(
        rsa_agency,
        unsigned_edoc(),
        signature_algorithm=SignatureMethod.RSA_SHA1,
        digest_algorithm=DigestAlgorithm.SHA1,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    trust = pki.TrustStore((ca[1],))
    with pytest.raises(InvalidSignature, match="rsa-sha1"):
        Verifier(VerificationPolicy(), trust, engine).verify(data, rsa_agency[1])
    signed = Verifier(VerificationPolicy(allow_sha1=True), trust, engine).verify(
        data, rsa_agency[1]
    )
    assert signed.tag == f"{ED}edXML"


def test_sha1_digest_alone_refused(verifier: Verifier, rsa_agency: Pair) -> None:
    data = signxml_sign(
        rsa_agency,
        unsigned_edoc(),
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA1,
    )
    with pytest.raises(InvalidSignature, match="xmldsig#sha1"):
        verifier.verify(data, rsa_agency[1])


@pytest.mark.parametrize("c14n", list(CanonicalizationMethod))
def test_every_c14n_accepted(
    verifier: Verifier, ec_agency: Pair, c14n: CanonicalizationMethod
) -> None:
    data = signxml_sign(
        ec_agency,
        unsigned_edoc(),
        signature_algorithm=SignatureMethod.ECDSA_SHA384,
        digest_algorithm=DigestAlgorithm.SHA512,
        c14n_algorithm=c14n,
    )
    verifier.verify(data, ec_agency[1])


def test_rsa_1024_refused(verifier: Verifier, ca: Pair) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pair = pki.issue_agency_cert(*ca, "000.00.00.G22", "x", key=weak)
    with pytest.raises(InvalidSignature, match="1024 bits is too weak"):
        verifier.verify(sign(pair), pair[1])


def test_curve_p521_refused(verifier: Verifier, ca: Pair) -> None:
    pair = pki.issue_agency_cert(
        *ca, "000.00.00.G22", "x", key=ec.generate_private_key(ec.SECP521R1())
    )
    with pytest.raises(InvalidSignature, match="secp521r1"):
        verifier.verify(sign(pair), pair[1])


def test_unknown_transform_refused(verifier: Verifier, rsa_agency: Pair) -> None:
    root = etree.fromstring(sign(rsa_agency))
    transforms = root.find(f".//{DS}Transforms")
    assert transforms is not None
    xpath = "http://www.w3.org/TR/1999/REC-xpath-19991116"
    etree.SubElement(transforms, f"{DS}Transform").set("Algorithm", xpath)
    with pytest.raises(InvalidSignature, match="transform not accepted"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


# --- shape: one signature, one place, the whole document ---------------------------------


def test_two_signatures(verifier: Verifier, rsa_agency: Pair) -> None:
    root = etree.fromstring(sign(rsa_agency))
    signature = root.find(f".//{DS}Signature")
    body = root.find(f".//{ED}edXMLBody")
    assert signature is not None and body is not None
    body.append(copy.deepcopy(signature))
    with pytest.raises(InvalidSignature, match="exactly one ds:Signature, found 2"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


def test_no_signature(verifier: Verifier, rsa_agency: Pair) -> None:
    with pytest.raises(InvalidSignature, match="found 0"):
        verifier.verify(etree.tostring(unsigned_edoc()), rsa_agency[1])


def test_signature_elsewhere(verifier: Verifier, rsa_agency: Pair) -> None:
    root = etree.fromstring(sign(rsa_agency))
    signature = root.find(f".//{DS}Signature")
    assert signature is not None
    root.append(signature)  # moves it to the end of the root
    with pytest.raises(InvalidSignature, match="must be at"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


def test_wrapping_reference_to_id(verifier: Verifier, rsa_agency: Pair) -> None:
    # A signature over one Id'd part only: the rest could be changed at will.
    root = unsigned_edoc()
    body = root.find(f".//{ED}edXMLBody")
    assert body is not None
    body.set("Id", "x")
    data = signxml_sign(rsa_agency, root, reference_uri="#x")
    with pytest.raises(InvalidSignature, match='URI=""'):
        verifier.verify(data, rsa_agency[1])


def test_wrapping_original_inside_object(verifier: Verifier, rsa_agency: Pair) -> None:
    # The classic wrapping: forge the visible content, hide the signed original in ds:Object.
    root = etree.fromstring(sign(rsa_agency))
    signature = root.find(f".//{DS}Signature")
    assert signature is not None
    original = copy.deepcopy(root.find(f"{ED}edXMLEnvelope"))
    assert original is not None
    for inner in list(original.iter(f"{DS}Signature")):
        inner.getparent().remove(inner)  # type: ignore[union-attr]
    subject = root.find(f".//{ED}Subject")
    assert subject is not None
    subject.text = "Forged subject"
    etree.SubElement(signature, f"{DS}Object").append(original)
    with pytest.raises(InvalidSignature, match="Object"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


def test_two_references(verifier: Verifier, rsa_agency: Pair) -> None:
    root = etree.fromstring(sign(rsa_agency))
    reference = root.find(f".//{DS}Reference")
    assert reference is not None
    reference.addnext(copy.deepcopy(reference))
    with pytest.raises(InvalidSignature, match="exactly one ds:Reference"):
        verifier.verify(etree.tostring(root), rsa_agency[1])


# --- hostile input -----------------------------------------------------------------------


def test_malformed(verifier: Verifier, rsa_agency: Pair) -> None:
    with pytest.raises(MalformedXml):
        verifier.verify(b"<edXML><unclosed>", rsa_agency[1])


@pytest.mark.parametrize(
    "doctype", [b'<!DOCTYPE edXML [<!ENTITY x "boom">]>', b'<!DOCTYPE edXML SYSTEM "e.dtd">']
)
def test_doctype_refused(verifier: Verifier, rsa_agency: Pair, doctype: bytes) -> None:
    data = sign(rsa_agency).replace(b"?>", b"?>\n" + doctype, 1)
    with pytest.raises(MalformedXml, match="DOCTYPE"):
        verifier.verify(data, rsa_agency[1])


# --- policy ------------------------------------------------------------------------------


def test_policy_sets() -> None:
    strict = VerificationPolicy()
    assert SignatureMethod.RSA_SHA256 in strict.signature_methods
    assert SignatureMethod.ECDSA_SHA512 in strict.signature_methods
    assert not any("SHA1" in m.name for m in strict.signature_methods)
    assert not any("MGF1" in m.name or "HMAC" in m.name for m in strict.signature_methods)
    assert DigestAlgorithm.SHA1 not in strict.digest_algorithms
    lax = VerificationPolicy(allow_sha1=True)
    assert SignatureMethod.RSA_SHA1 in lax.signature_methods
    assert DigestAlgorithm.SHA1 in lax.digest_algorithms
    config = strict.signature_config()
    assert config is strict.signature_config()
    assert config.location == f"./{ED}edXMLEnvelope/{ED}edXMLHeader/"
    assert config.expect_references == 1 and config.require_x509
    assert VerificationPolicy() == strict and hash(VerificationPolicy()) == hash(strict)


# --- xmlsec1 interop ---------------------------------------------------------------------


@pytest.mark.parametrize("agency", ["rsa_agency", "ec_agency"])
@pytest.mark.process  # runs xmlsec1
def test_xmlsec1_verifies_ours(
    request: pytest.FixtureRequest, tmp_path: Path, ca: Pair, agency: str
) -> None:
    xmlsec1 = shutil.which("xmlsec1")
    if xmlsec1 is None:
        pytest.skip("xmlsec1 is not installed (apt-get install xmlsec1)")
    pair: Pair = request.getfixturevalue(agency)
    (tmp_path / "ca.pem").write_bytes(pki.cert_to_pem(ca[1]))
    (tmp_path / "signed.xml").write_bytes(sign(pair))
    run = subprocess.run(
        [xmlsec1, "--verify", "--trusted-pem", "ca.pem", "signed.xml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout + run.stderr


def test_attachment_over_libxml2_text_limit(verifier: Verifier, ec_agency: Pair) -> None:
    # One base64 text node over 10 MB (libxml2's default cap) must sign and verify.
    root = unsigned_edoc()
    blob = root.find(f".//{ED}ContentTransferEncoded")
    assert blob is not None
    blob.text = "QUJD" * 2_700_000
    signed = verifier.verify(sign(ec_agency, root), ec_agency[1])
    assert len(signed.findtext(f".//{ED}ContentTransferEncoded") or "") == 10_800_000


def test_a_comment_inside_signed_text_is_not_signed_and_does_not_cut_it(
    verifier: Verifier, ec_agency: Pair
) -> None:
    """C14N of ``URI=""`` drops comments, so a comment put into a signed text keeps the
    signature valid; the signed tree must then read the text whole ("AB", not "A" as lxml's
    ``.text`` would before the comment: the SAML comment-truncation attack)."""
    root = unsigned_edoc()
    subject = root.find(f".//{ED}Subject")
    assert subject is not None and subject.text
    whole = subject.text
    data = sign(ec_agency, root)
    cut = len(whole) // 2
    commented = data.replace(
        whole.encode(), (whole[:cut] + "<!-- chen vao -->" + whole[cut:]).encode(), 1
    )
    assert commented != data
    # Bytes from outside never get that far: the hardened parser refuses inner comments.
    with pytest.raises(MalformedXml, match="comments inside the package"):
        verifier.verify(commented, ec_agency[1])
    # A tree parsed by anything else: the verifier's own defence reads the text whole.
    signed = verifier.verify_tree(etree.fromstring(commented), ec_agency[1])
    package = formats.parse_package(signed)
    assert isinstance(package, formats.Edoc) and package.subject == whole


def test_an_unknown_engine_is_refused(ca: Pair) -> None:
    with pytest.raises(ValueError, match="unknown verifier engine"):
        Verifier(VerificationPolicy(), pki.TrustStore((ca[1],)), "hand-rolled")


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_key_info_holds_the_certificate_as_libxmlsec1_writes_it(
    ca: Pair, rsa_agency: Pair, ec_agency: Pair, kind: str
) -> None:
    """We write the certificate into the template and sign with the bare key (cheaper to
    copy into each context); the KeyInfo must read as libxmlsec1's own, filled from a key that
    carries the certificate, down to the line breaks."""
    import xmlsec

    pair = rsa_agency if kind == "rsa" else ec_agency
    key_pem, cert_pem = pki.key_to_pem(pair[0]), pki.cert_to_pem(pair[1])
    ours = etree.fromstring(sign(pair))
    theirs = unsigned_edoc()
    header = theirs.find(HEADER)
    assert header is not None
    c = xmlsec.constants
    method = c.TransformRsaSha256 if kind == "rsa" else c.TransformEcdsaSha256
    signature = xmlsec.template.create(theirs, c.TransformExclC14N, method, ns="ds")
    header.append(signature)
    reference = xmlsec.template.add_reference(signature, c.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, c.TransformEnveloped)
    xmlsec.template.add_transform(reference, c.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(key_info))
    key = xmlsec.Key.from_memory(key_pem, c.KeyDataFormatPem)
    key.load_cert_from_memory(cert_pem, c.KeyDataFormatPem)
    context = xmlsec.SignatureContext()
    context.key = key
    context.sign(signature)

    def key_info_of(root: etree._Element) -> bytes:
        found = root.find(f".//{DS}KeyInfo")
        assert found is not None
        return etree.tostring(found)

    # Read back from bytes: lxml's find does not match nodes libxmlsec1 made in place.
    assert key_info_of(ours) == key_info_of(etree.fromstring(etree.tostring(theirs)))
