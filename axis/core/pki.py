"""Certificates and keys: the development CA, agency and hub certificates, the trust store.

Everything here is a pure function over ``cryptography`` objects, plus small PEM load/save
helpers. The hub trusts a short list of CAs (its development CA and any outside CA the operator
added, as the national axis trusts the Government CA); an agency certificate is trusted when one
of those CAs issued it *directly*. There is no path building on purpose: real agency
certificates come straight from the Government CA, and a flat rule is one that cannot be
misread.

Why not ``cryptography.x509.verification``: its client verifier insists on a subjectAltName,
which outside-CA agency certificates (the samples included) do not carry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from axis.core.clock import utc_now
from axis.core.edxml_model import is_organ_id
from axis.errors import AxisError, UntrustedCertificate

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Certificates start a few minutes in the past so a peer whose clock runs slightly behind
# does not see a brand-new certificate as "not yet valid".
_BACKDATE = dt.timedelta(minutes=5)


def new_key(kind: str = "rsa") -> PrivateKey:
    """A fresh private key: ``"rsa"`` (RSA 2048) or ``"ec"`` (ECDSA P-256).

    Raises ValueError for any other kind.
    """
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r} (expected 'rsa' or 'ec')")


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = []
    if organization is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str, valid_days: int = 3650) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed v3 CA (RSA 2048): CA:TRUE, keyCertSign + cRLSign, SKI/AKI."""
    key = new_key("rsa")
    now = utc_now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _key_usage(*, cert_sign: bool = False, end_entity: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=end_entity,
        content_commitment=end_entity,  # nonRepudiation: agencies sign official documents
        key_encipherment=end_entity,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_end_entity(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    key: PrivateKey,
    san: x509.SubjectAlternativeName,
    valid_days: int,
) -> x509.Certificate:
    now = utc_now()
    # Never outlive the issuer: a chain that expires in the middle is a support call.
    not_after = min(now + dt.timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(end_entity=True), critical=True)
        .add_extension(eku, critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _san(hostnames: Sequence[str], ips: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return x509.SubjectAlternativeName(names)


def issue_agency_cert(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    organ_id: str,
    name: str,
    key: PrivateKey | None = None,
    valid_days: int = 825,
) -> tuple[PrivateKey, x509.Certificate]:
    """An agency's end-entity certificate: CN=OrganId, O=organ name.

    It signs packages and opens TLS to the hub (clientAuth), and serves the agency's push
    endpoint on loopback (serverAuth, SAN localhost + 127.0.0.1). A new RSA key is made unless
    ``key`` is given. Raises ValueError if ``organ_id`` is not an OrganId.
    """
    if not is_organ_id(organ_id):
        raise ValueError(f"not an OrganId: {organ_id!r}")
    key = key if key is not None else new_key("rsa")
    cert = _issue_end_entity(
        ca_key,
        ca_cert,
        _name(organ_id, organization=name),
        key,
        _san(["localhost"], ["127.0.0.1"]),
        valid_days,
    )
    return key, cert


def issue_hub_cert(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    key: PrivateKey | None = None,
    valid_days: int = 825,
) -> tuple[PrivateKey, x509.Certificate]:
    """The hub's certificate (CN "Axis hub"): its TLS server identity, its client identity when
    pushing to agencies, and the key that signs receipts and log checkpoints."""
    key = key if key is not None else new_key("rsa")
    cert = _issue_end_entity(
        ca_key, ca_cert, _name("Axis hub", "Axis"), key, _san(hostnames, ips), valid_days
    )
    return key, cert


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def organ_id_of(cert: x509.Certificate) -> str | None:
    """The OrganId a certificate names: its CN, else its O, when that is an OrganId."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        value = _attr(cert.subject, oid)
        if value is not None and is_organ_id(value):
            return value
    return None


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the file itself is mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> PrivateKey:
    """An RSA or EC private key from unencrypted PEM.

    Raises AxisError (an operator problem, not a client's) if it is not one.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AxisError(f"not a usable PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise AxisError(f"unsupported private key type {type(key).__name__} (RSA or EC only)")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    """The first certificate in a PEM blob. Raises UntrustedCertificate on anything else."""
    return load_certs(pem)[0]


def load_certs(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob (at least one). Raises UntrustedCertificate otherwise."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise UntrustedCertificate(f"not a PEM certificate: {exc}") from exc
    if not certs:
        raise UntrustedCertificate("no PEM certificate found")
    return certs


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file atomically with mode 0600 (:func:`write_atomically`, private)."""
    write_atomically(path, data, private=True)


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``path`` whole or not at all: a temporary file of its own in the same folder
    (two writers of one path at once never share one), fsync, rename over the old; on any
    failure the temporary file goes. A crash leaves the old file or the new one.

    ``private``: the temporary file is created 0600 (mkstemp) and the file stays so, never
    readable by others, not even for an instant; else its mode is as the umask says.
    """
    path = Path(path)
    if private:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    else:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _key_usage_of(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_validity(cert: x509.Certificate, at: dt.datetime, role: str = "certificate") -> None:
    if at < cert.not_valid_before_utc:
        raise UntrustedCertificate(
            f"{role} {_subject(cert)} is not valid yet (from {cert.not_valid_before_utc})"
        )
    if at > cert.not_valid_after_utc:
        raise UntrustedCertificate(f"{role} {_subject(cert)} expired on {cert.not_valid_after_utc}")


def _subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())


def _describe(cert: x509.Certificate) -> str:
    return f"certificate {_subject(cert)}"


@dataclass(frozen=True)
class TrustStore:
    """The CAs the hub trusts. A certificate is trusted when one of them issued it directly."""

    cas: tuple[x509.Certificate, ...]
    # certificate fingerprint -> the trusted CA that issued it (the CAs never change)
    _issuers: dict[bytes, x509.Certificate] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_pem_files(cls, paths: Iterable[Path]) -> TrustStore:
        """Every certificate of every file. Raises UntrustedCertificate on a bad file."""
        cas: list[x509.Certificate] = []
        for path in paths:
            cas.extend(load_certs(Path(path).read_bytes()))
        return cls(tuple(cas))

    def check(self, cert: x509.Certificate, at: dt.datetime) -> None:
        """Raise UntrustedCertificate unless ``cert`` is an end-entity certificate valid at
        ``at`` (naive means UTC), directly issued by a trusted CA that is valid at ``at``."""
        at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
        _check_validity(cert, at)
        # The rest depends only on the certificate and the CAs: worked out once per
        # certificate (the hub checks the same registered certificates all day long).
        key = cert.fingerprint(hashes.SHA256())
        issuer = self._issuers.get(key)
        if issuer is None:
            issuer = self._issuers[key] = self._trusted_issuer(cert)
        _check_validity(issuer, at, "its issuing CA")

    def _trusted_issuer(self, cert: x509.Certificate) -> x509.Certificate:
        what = _describe(cert)
        if _is_ca(cert):
            raise UntrustedCertificate(f"{what} is a CA certificate, not an agency's")
        if cert.issuer == cert.subject:
            raise UntrustedCertificate(f"{what} is self-signed")
        usage = _key_usage_of(cert)
        if usage is not None and not (usage.digital_signature or usage.content_commitment):
            raise UntrustedCertificate(f"{what} is not allowed to sign (KeyUsage)")
        return self._issuer_of(cert)

    def _issuer_of(self, cert: x509.Certificate) -> x509.Certificate:
        for ca in self.cas:
            if ca.subject != cert.issuer or not _is_ca(ca):
                continue
            usage = _key_usage_of(ca)
            if usage is not None and not usage.key_cert_sign:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, CryptoInvalidSignature, UnsupportedAlgorithm):
                # Same name, other key (e.g. a re-keyed CA): try the next one.
                continue
            return ca
        raise UntrustedCertificate(
            f"{_describe(cert)} was not issued by a trusted CA "
            f"(issuer {cert.issuer.rfc4514_string()!r})"
        )

    def bundle_pem(self) -> bytes:
        """All trusted CAs as one PEM bundle, e.g. for ``ssl.SSLContext.load_verify_locations``."""
        return b"".join(cert_to_pem(ca) for ca in self.cas)
