"""The data folder (SPEC §4): its layout, ``axis init`` and node profiles.

::

    DATA/axis.toml  ca/ca.pem ca/key.pem ca/trusted/*.pem  hub/cert.pem hub/key.pem
    DATA/admin.token  DATA/axis.db  DATA/agencies/ORGAN_ID/{key,cert,ca}.pem node.toml
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from axis.core import pki
from axis.core.formats import ORGAN_ID_FORMS, is_organ_id
from axis.core.signing import VerificationPolicy, Verifier, check_key_strength
from axis.errors import ConfigError, DataDirError, InvalidSignature, UntrustedCertificate
from axis.host.config import DEFAULT_TOML, Settings, load_settings


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "axis.toml"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "key.pem"

    @property
    def trusted_dir(self) -> Path:
        return self.root / "ca" / "trusted"

    @property
    def hub_cert(self) -> Path:
        return self.root / "hub" / "cert.pem"

    @property
    def hub_key(self) -> Path:
        return self.root / "hub" / "key.pem"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def systems_key(self) -> Path:
        """The key that seals the national axis's face's system secrets in the database."""
        return self.root / "systems.key"

    def systems_key_bytes(self) -> bytes:
        """That key, made on first use (32 random bytes, readable by the hub's user only)."""
        if not self.systems_key.exists():
            pki.write_private(self.systems_key, secrets.token_bytes(32))
        key = self.systems_key.read_bytes()
        if len(key) != 32:
            raise DataDirError(f"{self.systems_key}: not a 32-byte key")
        return key

    @property
    def database(self) -> Path:
        return self.root / "axis.db"

    @property
    def serve_lock_file(self) -> Path:
        return self.root / "serve.lock"

    def profile(self, organ_id: str) -> Path:
        return self.root / "agencies" / organ_id

    @property
    def simulation_marker(self) -> Path:
        """Present in a data folder ``axis simulate`` made for a hub of its own: only such a
        hub may run on the simulation's clock."""
        return self.root / "simulation"

    def check_simulated_clock(self, settings: Settings) -> None:
        """Refuse the simulation's clock (:mod:`axis.core.clock`) to a hub that could serve
        real agencies: it must be the simulator's own data folder, listening on loopback.

        Raises:
            DataDirError: it is not."""
        if not self.simulation_marker.exists():
            raise DataDirError(
                f"{self.root} was not made by axis simulate: only the simulator's own hub runs"
                " on the simulation's clock"
            )
        hosts = [settings.hub.host, settings.hub.admin_host]
        if settings.vdxp.enabled:
            hosts.append(settings.vdxp.vdxp_host)
        if any(host not in LOOPBACK for host in hosts):
            raise DataDirError(
                "a hub on the simulation's clock listens on loopback only, not on"
                f" {', '.join(h for h in hosts if h not in LOOPBACK)}"
            )

    @contextlib.contextmanager
    def serving_lock(self) -> Iterator[None]:
        """Hold ``DATA/serve.lock`` while a hub serves this folder: one hub per folder.

        Two hubs on one SQLite database would each push the same deliveries, and a hub that
        starts could not tell a dead predecessor's leases from a live neighbour's. The lock is
        an flock, so the kernel lets go of it when the process dies, SIGKILL included.

        Raises:
            DataDirError: another process serves this folder.
        """
        fd = os.open(self.serve_lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise DataDirError(
                    f"another axis serve (pid {holder}) is serving {self.root};"
                    " one hub per data folder"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def settings(self) -> Settings:
        """The folder's ``axis.toml``, read now."""
        return load_settings(self.config)

    def database_url(self, override: str | None = None) -> str:
        """The one database of this data folder, for every command alike: ``--db``, else
        ``$AXIS_DB``, else ``axis.toml``'s ``database``, else ``DATA/axis.db``. (A command
        that skipped ``$AXIS_DB`` registered agencies in SQLite beside a hub on PostgreSQL.)"""
        return (
            override
            or os.environ.get("AXIS_DB")
            or self.settings().hub.database
            or str(self.database)
        )

    def require(self) -> None:
        """Raises DataDirError unless ``axis init`` has run here."""
        for path in (self.ca_cert, self.hub_cert, self.hub_key, self.admin_token):
            if not path.exists():
                raise DataDirError(f"{self.root} is not an Axis data folder (run `axis init`)")

    def trust_store(self) -> pki.TrustStore:
        """The development CA plus every CA added with ``axis ca trust``."""
        paths = [self.ca_cert, *sorted(self.trusted_dir.glob("*.pem"))]
        return pki.TrustStore.from_pem_files(paths)

    def verifier(self, settings: Settings) -> Verifier:
        """The hub's signature verifier: ``settings``' policy and engine, this folder's trust."""
        return Verifier(
            VerificationPolicy(allow_sha1=settings.signatures.allow_sha1),
            self.trust_store(),
            settings.signatures.verifier,
        )

    def server_tls(self) -> ssl.SSLContext:
        """TLS for the node API: the hub's certificate, client certificates checked against
        the development CA and every trusted outside CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.hub_cert, self.hub_key)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=self.trust_store().bundle_pem().decode("ascii"))
        return ctx


def set_setting(data: DataDir, key: str, value: str | bool | int | float) -> None:
    """Change one key of ``DATA/axis.toml`` in place, keeping the file's comments.

    Raises:
        DataDirError: the file has no such ``key = …`` line.
        ConfigError: the new value is not valid for the key (the file is left as it was).
    """
    text = data.config.read_text(encoding="utf-8")
    literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    changed, found = re.subn(rf"(?m)^{re.escape(key)} = \S+", f"{key} = {literal}", text)
    if found != 1:
        raise DataDirError(f"{data.config} has no {key} line")
    data.config.write_text(changed, encoding="utf-8")
    try:
        data.settings()
    except ConfigError:
        data.config.write_text(text, encoding="utf-8")
        raise


def init(
    data: DataDir, hub_hosts: tuple[str, ...] = ("localhost",), hub_key_kind: str = "ec"
) -> None:
    """Create the development CA, the hub's key and certificate, the admin token, axis.toml.

    ``hub_key_kind``: "ec" (ECDSA P-256, the default: it signs every receipt and checkpoint,
    and serves TLS, at a fraction of RSA's cost) or "rsa" (RSA-2048, for operators who ask).

    Raises:
        DataDirError: the folder was already initialised.
    """
    if data.ca_cert.exists():
        raise DataDirError(f"{data.root} is already initialised")
    for sub in ("ca/trusted", "hub", "agencies"):
        (data.root / sub).mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = pki.create_ca("Axis development CA")
    pki.write_private(data.ca_key, pki.key_to_pem(ca_key))
    data.ca_cert.write_bytes(pki.cert_to_pem(ca_cert))
    hub_key, hub_cert = pki.issue_hub_cert(
        ca_key, ca_cert, hub_hosts, key=pki.new_key(hub_key_kind)
    )
    pki.write_private(data.hub_key, pki.key_to_pem(hub_key))
    data.hub_cert.write_bytes(pki.cert_to_pem(hub_cert))
    pki.write_private(data.admin_token, (secrets.token_urlsafe(32) + "\n").encode())
    data.systems_key_bytes()
    if not data.config.exists():
        data.config.write_text(DEFAULT_TOML, encoding="utf-8")


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def mark_simulation(data: DataDir) -> None:
    """Mark a data folder as the simulator's own (:meth:`DataDir.check_simulated_clock`)."""
    data.simulation_marker.write_text(
        "Made by axis simulate for a hub of its own, which runs on the simulation's clock.\n",
        encoding="utf-8",
    )


def load_issuer(data: DataDir) -> tuple[pki.PrivateKey, x509.Certificate]:
    """The development CA's key and certificate (load once to register many agencies)."""
    return pki.load_key(data.ca_key.read_bytes()), pki.load_cert(data.ca_cert.read_bytes())


def trust_ca(data: DataDir, pem: bytes) -> x509.Certificate:
    """Add an outside CA to ``ca/trusted``; returns its certificate.

    Raises:
        DataDirError: the file does not hold exactly one CA certificate.
    """
    certs = pki.load_certs(pem)
    if len(certs) != 1:
        raise DataDirError(f"expected one CA certificate, found {len(certs)}")
    cert = certs[0]
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise DataDirError("that certificate is not a CA (BasicConstraints CA:TRUE is missing)")
    data.trusted_dir.mkdir(parents=True, exist_ok=True)
    (data.trusted_dir / f"{pki.fingerprint(cert)[:16]}.pem").write_bytes(pki.cert_to_pem(cert))
    return cert


def write_profile(
    data: DataDir,
    organ_id: str,
    name: str,
    hub_url: str,
    cert_pem: bytes | None = None,
    key_kind: str = "rsa",
    issuer: tuple[pki.PrivateKey, x509.Certificate] | None = None,
    aliases: Sequence[str] = (),
) -> x509.Certificate:
    """Issue (or take, with ``cert_pem``) an agency's certificate and write its node profile
    under ``DATA/agencies/ORGAN_ID``; returns the certificate. Registering the agency is
    :func:`axis.usecases.registration.register`'s job, which calls this. ``issuer`` saves
    loading the development CA for every agency when registering many (:func:`load_issuer`).

    Raises:
        DataDirError: a malformed OrganId, an existing profile, or a certificate the hub does
            not trust or that names another agency (its OrganId or one of its ``aliases``).
            Nothing is written then.
    """
    if not is_organ_id(organ_id):
        raise DataDirError(f"{organ_id!r} is not an OrganId ({ORGAN_ID_FORMS})")
    profile = data.profile(organ_id)
    if (profile / "cert.pem").exists():
        raise DataDirError(f"a profile for {organ_id} already exists at {profile}")
    # Everything that can refuse runs before the profile folder exists.
    key: pki.PrivateKey | None = None
    if cert_pem is None:
        ca_key, ca_cert = issuer or load_issuer(data)
        key, cert = pki.issue_agency_cert(ca_key, ca_cert, organ_id, name, pki.new_key(key_kind))
    else:
        cert = _outside_cert(data, (organ_id, *aliases), cert_pem)
    profile.mkdir(parents=True, exist_ok=True)
    if key is not None:
        pki.write_private(profile / "key.pem", pki.key_to_pem(key))
    (profile / "cert.pem").write_bytes(pki.cert_to_pem(cert))
    # ca.pem: every CA the hub trusts (to check the hub's TLS certificate, and the signatures
    # of packages pushed to `axis-node listen`); hub.pem: the hub itself, the only client the
    # push endpoint accepts.
    (profile / "ca.pem").write_bytes(data.trust_store().bundle_pem())
    (profile / "hub.pem").write_bytes(data.hub_cert.read_bytes())
    (profile / "node.toml").write_text(
        f'hub = "{hub_url}"\norgan_id = "{organ_id}"\nname = "{_toml_escape(name)}"\n',
        encoding="utf-8",
    )
    return cert


def _outside_cert(data: DataDir, codes: Sequence[str], cert_pem: bytes) -> x509.Certificate:
    cert = pki.load_cert(cert_pem)
    named = pki.organ_id_of(cert)
    if named is None:
        # Agencies find the sender of a pushed package by the OrganId in its certificate.
        raise DataDirError("that certificate names no OrganId in its subject (CN or O)")
    if named not in codes:
        raise DataDirError(f"that certificate belongs to {named}, not {' or '.join(codes)}")
    try:  # refused now, not at the agency's first package
        check_key_strength(
            cert, VerificationPolicy(allow_sha1=data.settings().signatures.allow_sha1)
        )
    except InvalidSignature as exc:
        raise DataDirError(f"that certificate's key cannot sign for the hub: {exc}") from exc
    try:
        data.trust_store().check(cert, datetime.now(UTC))
    except UntrustedCertificate as exc:
        raise DataDirError(f"the hub does not trust that certificate: {exc}") from exc
    return cert


def _toml_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def resolve(data_dir: str | os.PathLike[str] | None) -> DataDir:
    """``--data``, else ``$AXIS_DATA``, else ``./axis-data``."""
    return DataDir(Path(data_dir or os.environ.get("AXIS_DATA") or "axis-data").resolve())
