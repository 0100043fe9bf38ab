"""Certificates and the trust store (axis.core.pki)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

from axis.core import formats, pki
from axis.core.clock import utc_now  # per check: a time read at import goes stale
from axis.errors import AxisError, UntrustedCertificate
from tests.helpers import SAMPLES, self_signed_cert


@pytest.fixture(scope="module")
def ca() -> tuple[pki.PrivateKey, x509.Certificate]:
    return pki.create_ca("Axis test CA")


@pytest.fixture(scope="module")
def agency(ca: tuple[pki.PrivateKey, x509.Certificate]) -> tuple[pki.PrivateKey, x509.Certificate]:
    return pki.issue_agency_cert(*ca, "000.00.00.G22", "Văn phòng Chính phủ")


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def test_new_key_kinds() -> None:
    assert isinstance(pki.new_key(), rsa.RSAPrivateKey)
    assert pki.new_key("rsa").key_size == 2048
    key = pki.new_key("ec")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    with pytest.raises(ValueError):
        pki.new_key("dsa")


def test_ca_extensions(ca: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    _, cert = ca
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ext(cert, x509.SubjectKeyIdentifier)
    assert cert.issuer == cert.subject
    assert cert.version == x509.Version.v3


def test_agency_cert_extensions(
    ca: tuple[pki.PrivateKey, x509.Certificate],
    agency: tuple[pki.PrivateKey, x509.Certificate],
) -> None:
    _, ca_cert = ca
    _, cert = agency
    assert cert.version == x509.Version.v3
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert (cn, org) == ("000.00.00.G22", "Văn phòng Chính phủ")
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and not bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and ku.value.content_commitment
    assert ku.value.key_encipherment and not ku.value.key_cert_sign
    eku = ext(cert, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH in eku
    san = ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    ca_ski = ext(ca_cert, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    ext(cert, x509.SubjectKeyIdentifier)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.not_valid_after_utc <= ca_cert.not_valid_after_utc


def test_agency_cert_with_given_ec_key(ca: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    key = pki.new_key("ec")
    got_key, cert = pki.issue_agency_cert(*ca, "000.00.00.H41", "UBND Nghệ An", key=key)
    assert got_key is key
    assert cert.public_key() == key.public_key()


# What a package's schema refuses as an OrganId, certificates refuse too: pki had a regex of
# its own that took a trailing newline and other scripts' digits ("٠" is ARABIC-INDIC ZERO).
NOT_ORGAN_IDS = [
    "G2", "g22", "G22.", "G22..01", "G22.0a", "28.22.H17", "000.00.00.G22\n", "G22\n",
    "٠٠٠.٠٠.٠٠.G٢٢", "G٢٢", "000.00.00.g22", " 000.00.00.G22", "H37" + ".01" * 11,
]  # fmt: skip


@pytest.mark.parametrize("organ_id", NOT_ORGAN_IDS, ids=repr)
def test_agency_cert_refuses_bad_organ_id(
    ca: tuple[pki.PrivateKey, x509.Certificate], organ_id: str
) -> None:
    assert not formats.is_organ_id(organ_id)
    with pytest.raises(ValueError):
        pki.issue_agency_cert(*ca, organ_id, "x", key=pki.new_key("ec"))


@pytest.mark.parametrize("organ_id", NOT_ORGAN_IDS, ids=repr)
def test_organ_id_of_reads_only_what_a_package_would_accept(organ_id: str) -> None:
    cert = self_signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, organ_id)]))
    assert pki.organ_id_of(cert) is None


def test_hub_cert(ca: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    _, cert = pki.issue_hub_cert(*ca, hostnames=("localhost", "hub.test"), ips=("127.0.0.1", "::1"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Axis hub"
    eku = ext(cert, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    san = ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hub.test"]
    assert len(san.get_values_for_type(x509.IPAddress)) == 2
    assert pki.organ_id_of(cert) is None
    pki.TrustStore((ca[1],)).check(cert, utc_now())


def test_organ_id_of(agency: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    assert pki.organ_id_of(agency[1]) == "000.00.00.G22"
    sample = pki.load_cert((SAMPLES / "000.00.00.H41.pem").read_bytes())
    assert pki.organ_id_of(sample) == "000.00.00.H41"


def test_organ_id_of_falls_back_to_o() -> None:
    cert = self_signed(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "000.00.00.H10"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Van thu"),
            ]
        )
    )
    assert pki.organ_id_of(cert) == "000.00.00.H10"


def test_fingerprint_is_sha256_of_der(agency: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    fp = pki.fingerprint(agency[1])
    assert len(fp) == 64 and fp == agency[1].fingerprint(hashes.SHA256()).hex()


def test_pem_round_trips(agency: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    key, cert = agency
    assert pki.load_cert(pki.cert_to_pem(cert)) == cert
    loaded = pki.load_key(pki.key_to_pem(key))
    assert loaded.public_key() == key.public_key()
    two = pki.cert_to_pem(cert) + (SAMPLES / "outside-ca.pem").read_bytes()
    assert len(pki.load_certs(two)) == 2


def test_garbage_pem() -> None:
    with pytest.raises(UntrustedCertificate):
        pki.load_cert(b"not a certificate")
    with pytest.raises(UntrustedCertificate):
        pki.load_certs(b"")
    with pytest.raises(AxisError):
        pki.load_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_write_private_is_0600_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    pki.write_private(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


# --- trust store -------------------------------------------------------------------------


def self_signed(name: x509.Name, *, ca: bool = False) -> x509.Certificate:
    key = pki.new_key("ec")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc_now() - dt.timedelta(days=1))
        .not_valid_after(utc_now() + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_samples_trusted_by_outside_ca() -> None:
    trust = pki.TrustStore.from_pem_files([SAMPLES / "outside-ca.pem"])
    for name in ("000.00.00.G22.pem", "000.00.00.H41.pem"):
        trust.check(pki.load_cert((SAMPLES / name).read_bytes()), utc_now())
    assert trust.bundle_pem() == pki.cert_to_pem(trust.cas[0])


def test_trust_accepts_own_agency(
    ca: tuple[pki.PrivateKey, x509.Certificate],
    agency: tuple[pki.PrivateKey, x509.Certificate],
) -> None:
    pki.TrustStore((ca[1],)).check(agency[1], utc_now())
    # A naive datetime is read as UTC.
    pki.TrustStore((ca[1],)).check(agency[1], utc_now().replace(tzinfo=None))


def test_trust_refuses_foreign_ca(agency: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    outside = pki.TrustStore.from_pem_files([SAMPLES / "outside-ca.pem"])
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        outside.check(agency[1], utc_now())


def test_trust_refuses_same_name_other_key(agency: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    # A CA with the very same name but another key did not issue this certificate.
    _, impostor = pki.create_ca("Axis test CA")
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        pki.TrustStore((impostor,)).check(agency[1], utc_now())


def test_trust_refuses_self_signed_leaf() -> None:
    leaf = self_signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "000.00.00.G22")]))
    with pytest.raises(UntrustedCertificate, match="self-signed"):
        pki.TrustStore((leaf,)).check(leaf, utc_now())


def test_trust_refuses_ca_cert(ca: tuple[pki.PrivateKey, x509.Certificate]) -> None:
    with pytest.raises(UntrustedCertificate, match="CA certificate"):
        pki.TrustStore((ca[1],)).check(ca[1], utc_now())


def test_trust_refuses_expired_and_not_yet_valid(
    ca: tuple[pki.PrivateKey, x509.Certificate],
) -> None:
    _, cert = pki.issue_agency_cert(*ca, "000.00.00.H10", "UBND Hà Nội", valid_days=1)
    trust = pki.TrustStore((ca[1],))
    with pytest.raises(UntrustedCertificate, match="expired"):
        trust.check(cert, utc_now() + dt.timedelta(days=2))
    with pytest.raises(UntrustedCertificate, match="not valid yet"):
        trust.check(cert, utc_now() - dt.timedelta(days=1))


def leaf_signed_by(issuer_key: pki.PrivateKey, issuer_name: x509.Name) -> x509.Certificate:
    key = pki.new_key("ec")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "000.00.00.G22")]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc_now() - dt.timedelta(days=1))
        .not_valid_after(utc_now() + dt.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def test_trust_refuses_expired_ca() -> None:
    ca_key, ca_cert = pki.create_ca("Short CA", valid_days=2)
    leaf = leaf_signed_by(ca_key, ca_cert.subject)  # outlives its CA
    trust = pki.TrustStore((ca_cert,))
    trust.check(leaf, utc_now())
    with pytest.raises(UntrustedCertificate, match="issuing CA .* expired"):
        trust.check(leaf, utc_now() + dt.timedelta(days=3))


def test_issued_cert_never_outlives_its_ca() -> None:
    ca_key, ca_cert = pki.create_ca("Short CA", valid_days=2)
    _, cert = pki.issue_agency_cert(ca_key, ca_cert, "000.00.00.H10", "x", valid_days=825)
    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc


def test_trust_refuses_issuer_that_is_not_a_ca() -> None:
    # A leaf certificate in the trust store does not make it a CA.
    issuer_key, issuer = self_signed_cert("not a CA", pki.new_key("ec"))
    issuer_name = issuer.subject
    with pytest.raises(UntrustedCertificate, match="not issued by a trusted CA"):
        pki.TrustStore((issuer,)).check(leaf_signed_by(issuer_key, issuer_name), utc_now())


def test_the_schema_and_the_code_say_the_same_of_an_organ_id() -> None:
    """The XSD's OrganIdType pattern (anchored by XSD itself) is the code's one definition."""
    xsd = Path(__file__).resolve().parents[1] / "schemas" / "common.xsd"
    tree = etree.parse(str(xsd))
    found = tree.xpath(
        "//xs:simpleType[@name='OrganIdType']//xs:pattern/@value",
        namespaces={"xs": "http://www.w3.org/2001/XMLSchema"},
    )
    assert isinstance(found, list)
    patterns = [p for p in found if isinstance(p, str)]
    assert [f"^{p}\\Z" for p in patterns] == [
        formats.ORGAN_ID_2016_RE.pattern,
        formats.ORGAN_ID_QD20_RE.pattern,
    ]
