"""The data folder's rules for registering agencies (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from axis import datadir
from axis.core import pki
from axis.datadir import DataDir, DataDirError


def _outside_cert(ca_key: pki.PrivateKey, ca_cert: x509.Certificate, cn: str) -> bytes:
    key = pki.new_key("ec")
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return pki.cert_to_pem(cert)


def test_an_outside_certificate_must_name_its_organ_id(data: DataDir) -> None:
    ca_key, ca_cert = pki.create_ca("Government CA (test)")
    datadir.trust_ca(data, pki.cert_to_pem(ca_cert))
    hub = "https://localhost:8443"
    with pytest.raises(DataDirError, match="names no OrganId"):
        datadir.new_agency(
            data, "000.00.00.H29", "Hà Nội", hub, cert_pem=_outside_cert(ca_key, ca_cert, "Ng A")
        )
    with pytest.raises(DataDirError, match="belongs to 000.00.00.H41"):
        datadir.new_agency(
            data,
            "000.00.00.H29",
            "Hà Nội",
            hub,
            cert_pem=_outside_cert(ca_key, ca_cert, "000.00.00.H41"),
        )
    assert not data.profile("000.00.00.H29").exists()
    agency = datadir.new_agency(
        data,
        "000.00.00.H29",
        "Hà Nội",
        hub,
        cert_pem=_outside_cert(ca_key, ca_cert, "000.00.00.H29"),
    )
    assert agency.organ_id == "000.00.00.H29"
    profile = data.profile("000.00.00.H29")
    assert (profile / "hub.pem").read_bytes() == data.hub_cert.read_bytes()
    assert len(pki.load_certs((profile / "ca.pem").read_bytes())) == 2  # dev CA + outside CA
    assert not (profile / "key.pem").exists()  # the hub never sees that agency's key


@pytest.mark.parametrize(
    "endpoint",
    ["https://127.0.0.1:9443/", "https://localhost/push", "https://[::1]:8443/"],
)
def test_good_endpoints(endpoint: str) -> None:
    datadir.check_endpoint(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9443/", "https://a..b/", "https:///x", "https://h:0/", "https://h:99999/"],
)
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(DataDirError, match="push endpoint"):
        datadir.check_endpoint(endpoint)


def test_set_setting_changes_one_key_and_keeps_the_comments(data: DataDir) -> None:
    datadir.set_setting(data, "verifier", "signxml")
    datadir.set_setting(data, "lease_s", 30.5)
    datadir.set_setting(data, "allow_sha1", True)
    settings = data.settings()
    assert (settings.verifier, settings.lease_s, settings.allow_sha1) == ("signxml", 30.5, True)
    assert "# the XMLDSig library that checks signatures" in data.config.read_text()
    before = data.config.read_text()
    with pytest.raises(DataDirError, match="no no_such_key line"):
        datadir.set_setting(data, "no_such_key", 1)
    with pytest.raises(ValueError, match="verifier must be one of"):
        datadir.set_setting(data, "verifier", "hand-rolled")
    assert data.config.read_text() == before  # a refused value leaves the file as it was
