"""The data folder and the registration of agencies into it (no server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from axis.core import pki
from axis.errors import ConfigError, DataDirError, DuplicateConflict
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.sqlite import SqliteStore
from axis.usecases import registration


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
        datadir.write_profile(
            data, "000.00.00.H29", "Hà Nội", hub, cert_pem=_outside_cert(ca_key, ca_cert, "Ng A")
        )
    with pytest.raises(DataDirError, match="belongs to 000.00.00.H41"):
        datadir.write_profile(
            data,
            "000.00.00.H29",
            "Hà Nội",
            hub,
            cert_pem=_outside_cert(ca_key, ca_cert, "000.00.00.H41"),
        )
    assert not data.profile("000.00.00.H29").exists()
    cert = datadir.write_profile(
        data,
        "000.00.00.H29",
        "Hà Nội",
        hub,
        cert_pem=_outside_cert(ca_key, ca_cert, "000.00.00.H29"),
    )
    assert pki.organ_id_of(cert) == "000.00.00.H29"
    profile = data.profile("000.00.00.H29")
    assert (profile / "hub.pem").read_bytes() == data.hub_cert.read_bytes()
    assert len(pki.load_certs((profile / "ca.pem").read_bytes())) == 2  # dev CA + outside CA
    assert not (profile / "key.pem").exists()  # the hub never sees that agency's key


async def test_registration_is_all_or_nothing(data: DataDir) -> None:
    """A registered agency has its profile and its row; a refused one leaves neither."""
    store = SqliteStore(data.database)
    await store.open()
    try:
        hub = "https://localhost:8443"
        first = await registration.register(data, store, "000.00.00.G22", "VPCP", hub_url=hub)
        assert await store.get_agency("000.00.00.G22") == first
        assert (data.profile("000.00.00.G22") / "key.pem").exists()
        with pytest.raises(DuplicateConflict, match="already registered"):
            await registration.register(data, store, "000.00.00.G22", "Lần hai", hub_url=hub)
        # The store refuses (here: the certificate is another row's already), so the
        # profile written for it goes too.
        ca_key, ca_cert = pki.create_ca("Government CA (test)")
        datadir.trust_ca(data, pki.cert_to_pem(ca_cert))
        pem = _outside_cert(ca_key, ca_cert, "000.00.00.H41")
        fingerprint = pki.fingerprint(pki.load_cert(pem))
        await store.add_agency(replace(first, organ_id="000.00.00.H42", fingerprint=fingerprint))
        with pytest.raises(DuplicateConflict, match="its certificate is already registered"):
            await registration.register(
                data, store, "000.00.00.H41", "Nghệ An", hub_url=hub, cert_pem=pem
            )
        assert not data.profile("000.00.00.H41").exists()
        with pytest.raises(DataDirError, match="push endpoint"):
            await registration.register(
                data, store, "000.00.00.H41", "Nghệ An", hub_url=hub, endpoint="http://x/"
            )
        assert not data.profile("000.00.00.H41").exists()
        assert [a.organ_id for a in await store.list_agencies()] == [
            "000.00.00.G22",
            "000.00.00.H42",
        ]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "endpoint",
    ["https://127.0.0.1:9443/", "https://localhost/push", "https://[::1]:8443/"],
)
def test_good_endpoints(endpoint: str) -> None:
    registration.check_endpoint(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9443/", "https://a..b/", "https:///x", "https://h:0/", "https://h:99999/"],
)
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(DataDirError, match="push endpoint"):
        registration.check_endpoint(endpoint)


def test_set_setting_changes_one_key_and_keeps_the_comments(data: DataDir) -> None:
    datadir.set_setting(data, "verifier", "signxml")
    datadir.set_setting(data, "lease_s", 30.5)
    datadir.set_setting(data, "allow_sha1", True)
    settings = data.settings()
    assert (
        settings.signatures.verifier,
        settings.delivery.lease_s,
        settings.signatures.allow_sha1,
    ) == ("signxml", 30.5, True)
    assert "# the XMLDSig library that checks signatures" in data.config.read_text()
    before = data.config.read_text()
    with pytest.raises(DataDirError, match="no no_such_key line"):
        datadir.set_setting(data, "no_such_key", 1)
    with pytest.raises(ConfigError, match="verifier must be one of"):
        datadir.set_setting(data, "verifier", "hand-rolled")
    assert data.config.read_text() == before  # a refused value leaves the file as it was


def test_every_command_finds_one_database_for_a_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--db, else $AXIS_DB, else axis.toml, else DATA/axis.db: the order every command uses
    (axis simulate --hub once skipped $AXIS_DB and registered its agencies in SQLite beside a
    hub on PostgreSQL, every document refused)."""
    data = DataDir(tmp_path / "data")
    datadir.init(data)
    monkeypatch.delenv("AXIS_DB", raising=False)
    assert data.database_url() == str(data.database)
    datadir.set_setting(data, "database", "postgresql://toml@127.0.0.1/axis")
    assert data.database_url() == "postgresql://toml@127.0.0.1/axis"
    monkeypatch.setenv("AXIS_DB", "postgresql://env@127.0.0.1/axis")
    assert data.database_url() == "postgresql://env@127.0.0.1/axis"
    assert (
        data.database_url("postgresql://flag@127.0.0.1/axis") == "postgresql://flag@127.0.0.1/axis"
    )


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_the_hubs_key_is_ecdsa_unless_asked_for_rsa(tmp_path: Path, kind: str) -> None:
    """ECDSA P-256 by default: the hub signs every receipt and checkpoint with it, at a
    fraction of RSA's cost; RSA-2048 for operators who ask (axis init --hub-key rsa)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    data = DataDir(tmp_path / "data")
    datadir.init(data, hub_key_kind=kind)
    key = pki.load_key(data.hub_key.read_bytes())
    if kind == "ec":
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    else:
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
