"""``DATA/axis.toml``: where the hub listens, its limits and its database.

:class:`Settings` holds one frozen dataclass per section of the file (``settings.limits``,
``settings.delivery`` …), so each part of the hub takes the section it needs. Read with
:mod:`tomllib`; an unknown section or key, or a value of the wrong type, is an error that
names the file, so that a typo does not silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from axis.core.retry import RetryPolicy
from axis.core.signing import VerifierEngine
from axis.errors import ConfigError

VERIFIERS = tuple(engine.value for engine in VerifierEngine)

DEFAULT_TOML = """\
# Axis hub settings. Every key is optional; the values below are the defaults.

[hub]
organ_id = "000.00.00.A00"      # the hub's own OrganId (used in its trace and receipts)
host = "127.0.0.1"              # node API (HTTPS, client certificates)
port = 8443
admin_host = "127.0.0.1"        # operator API (plain HTTP, bearer token): keep it on loopback
admin_port = 8444
database = ""                   # "" = DATA/axis.db (SQLite); or postgresql://user@host/db

[limits]
max_body_bytes = 52428800       # 50 MiB: the largest package accepted (413 too-large beyond)
max_recipients = 200            # To elements in one edoc
max_attachments = 100
max_xml_depth = 64
max_concurrent_uploads = 8      # packages read and verified at once; the rest wait their turn
uploads_per_agency = 2          # … of which one agency may hold at once (429 beyond)
min_body_bytes_per_s = 2048.0   # a body slower than this on average (after 5 s) is cut off
inbox_page = 100                # the largest page /v1/inbox returns
inbox_bytes = 1048576           # 1 MiB: package bytes one /v1/inbox?bodies=1 carries at most
ack_batch = 500                 # package ids one POST /v1/acks may acknowledge
rate_per_s = 50.0               # requests a second one agency may make on average (0 = no limit)
rate_burst = 200                # … and at once; beyond: 429 rate-limited with Retry-After
shutdown_timeout_s = 30.0       # on SIGTERM, how long requests in hand may take to finish
idle_timeout_s = 60.0           # a connection that sends no (complete) request for this long
body_idle_timeout_s = 30.0      # a body that stops arriving for this long is cut off (400) …
body_timeout_s = 900.0          # … and so is one that takes longer than this in all
verify_timeout_s = 10.0         # checking one package's signature: refused (422) beyond this
send_timeout_s = 300.0          # sending one package to a client that reads it: cut off beyond
max_connections = 2048          # open connections one listener holds (closed as they open beyond)
max_connections_per_peer = 64   # … of one agency (its certificate), or of one address without one
requests_per_connection = 100   # a connection is closed after about this many answers (0 = never)

[signatures]
allow_sha1 = false              # accept RSA-SHA1 signatures of older agency software
verifier = "xmlsec"             # the XMLDSig library that checks signatures: xmlsec or signxml

[delivery]
push_workers = 4                # concurrent pushes to agencies registered with --endpoint
push_timeout_s = 30.0           # one push: connect, send, answer
lease_s = 120.0                 # a claimed push belongs to its worker this long (then retaken)
retry_base_s = 2.0              # retry n waits a random time in [0, min(cap, base * factor^(n-1))]
retry_factor = 2.0
retry_cap_s = 1800.0            # never more than 30 minutes between tries once backed off
retry_max_attempts = 100
retry_max_age_s = 86400.0       # stop pushing a day after the hub took the package (pull remains)

[log]
checkpoint_every = 1000         # sign the log's head every N entries …
checkpoint_interval_s = 60.0    # … or every T seconds, whichever comes first

[vdxp]
# The national axis's own API, as VNPT's SDK calls it (README: "Point your SDK at Axis").
enabled = false                 # off unless asked for (or axis serve --vdxp-port P)
vdxp_host = "127.0.0.1"
vdxp_port = 8080
path_prefix = "/XrdAdapter/adapter"
tls_cert = ""                   # plain HTTP as the adapter is; a PEM certificate and key …
tls_key = ""                    # … (paths) make it HTTPS
strict = false                  # true: refuse what QCVN 102:2016 refuses (else: take and record)
require_signature = false       # true: refuse packages without a real XMLDSig signature
"""


@dataclass(frozen=True)
class HubSettings:
    """``[hub]``: who the hub is, where it listens, its database."""

    organ_id: str = "000.00.00.A00"
    host: str = "127.0.0.1"
    port: int = 8443
    admin_host: str = "127.0.0.1"
    admin_port: int = 8444
    database: str = ""


@dataclass(frozen=True)
class Limits:
    """``[limits]``: what one request, one package and one agency may take."""

    max_body_bytes: int = 50 * 1024 * 1024
    max_recipients: int = 200
    max_attachments: int = 100
    max_xml_depth: int = 64
    max_concurrent_uploads: int = 8
    uploads_per_agency: int = 2
    min_body_bytes_per_s: float = 2048.0
    inbox_page: int = 100
    inbox_bytes: int = 1024 * 1024
    ack_batch: int = 500
    rate_per_s: float = 50.0
    rate_burst: int = 200
    shutdown_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 900.0
    verify_timeout_s: float = 10.0
    send_timeout_s: float = 300.0
    max_connections: int = 2048
    max_connections_per_peer: int = 64
    requests_per_connection: int = 100


@dataclass(frozen=True)
class SignatureSettings:
    """``[signatures]``: what the verifier accepts, and which library checks."""

    allow_sha1: bool = False
    verifier: VerifierEngine = VerifierEngine.XMLSEC


@dataclass(frozen=True)
class DeliverySettings:
    """``[delivery]``: push workers, their leases, and how failed pushes are retried."""

    push_workers: int = 4
    push_timeout_s: float = 30.0
    lease_s: float = 120.0
    retry_base_s: float = 2.0
    retry_factor: float = 2.0
    retry_cap_s: float = 1800.0
    retry_max_attempts: int = 100
    retry_max_age_s: float = 86400.0

    def retry_policy(self) -> RetryPolicy:
        """The push retry policy these settings describe.

        Raises:
            ConfigError: the values make no policy (load_settings checks this on reading).
        """
        try:
            return RetryPolicy(
                base_s=self.retry_base_s,
                factor=self.retry_factor,
                cap_s=self.retry_cap_s,
                max_attempts=self.retry_max_attempts,
                max_age_s=self.retry_max_age_s,
            )
        except ValueError as exc:
            raise ConfigError(f"[delivery]: {exc}") from exc


@dataclass(frozen=True)
class LogSettings:
    """``[log]``: how often the hub signs a checkpoint of its log."""

    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0


@dataclass(frozen=True)
class VdxpSettings:
    """``[vdxp]``: the national axis's face (axis.core.vdxp): where, and how strict."""

    enabled: bool = False
    vdxp_host: str = "127.0.0.1"
    vdxp_port: int = 8080
    path_prefix: str = "/XrdAdapter/adapter"
    tls_cert: str = ""
    tls_key: str = ""
    strict: bool = False
    require_signature: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything ``axis serve`` needs to know that is not a key or a certificate, one field
    per section of ``axis.toml``."""

    hub: HubSettings = HubSettings()
    limits: Limits = Limits()
    signatures: SignatureSettings = SignatureSettings()
    delivery: DeliverySettings = DeliverySettings()
    log: LogSettings = LogSettings()
    vdxp: VdxpSettings = VdxpSettings()

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        admin_port: int | None = None,
        database: str | None = None,
        allow_sha1: bool | None = None,
        vdxp_port: int | None = None,
    ) -> Settings:
        """A copy with what ``axis serve``'s flags say instead; ``None`` changes nothing."""
        hub = self.hub
        hub = replace(hub, host=hub.host if host is None else host)
        hub = replace(hub, port=hub.port if port is None else port)
        hub = replace(hub, admin_port=hub.admin_port if admin_port is None else admin_port)
        hub = replace(hub, database=hub.database if database is None else database)
        sha1 = self.signatures.allow_sha1 if allow_sha1 is None else allow_sha1
        vdxp = self.vdxp
        if vdxp_port is not None:  # --vdxp-port turns the face on
            vdxp = replace(vdxp, enabled=True, vdxp_port=vdxp_port)
        return replace(
            self, hub=hub, signatures=replace(self.signatures, allow_sha1=sha1), vdxp=vdxp
        )

    def lookup(self, key: str) -> Any:
        """The value of ``key``, whichever section holds it (a key names one setting in the
        whole file, as ``axis.toml`` writes them). Raises KeyError for no such key."""
        for section in fields(self):
            values = getattr(self, section.name)
            if key in {f.name for f in fields(values)}:
                return getattr(values, key)
        raise KeyError(key)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _value(path: Path, section: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the setting's type (its default's), or ConfigError naming the file."""
    if isinstance(default, StrEnum):
        choices = [member.value for member in type(default)]
        if value not in choices:
            raise ConfigError(
                f"{path}: [{section}] {key} must be one of {', '.join(choices)}, not {value!r}"
            )
        return type(default)(value)
    expected = type(default)
    if expected is float and type(value) is int:
        value = float(value)  # "retry_base_s = 2" means 2.0
    # bool is an int in Python; a setting is exactly one or the other.
    if type(value) is not expected:
        raise ConfigError(
            f"{path}: [{section}] {key} must be {_TYPE_NAMES[expected]}, not {value!r}"
        )
    return value


def load_settings(path: Path) -> Settings:
    """Settings from ``path``, defaults for what it does not say.

    Raises:
        ConfigError: naming the file, for anything but valid UTF-8 TOML whose sections and keys
            are the ones above, each with a value of its default's type (one of the choices
            for an enumeration), and retry values that make a policy.
    """
    if not path.exists():
        return Settings()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid UTF-8 TOML: {exc}") from exc
    defaults = Settings()
    sections = {f.name: getattr(defaults, f.name) for f in fields(Settings)}
    chosen: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in sections:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a [{section}] table")
        known = sections[section]
        values = {}
        for key, value in table.items():
            if key not in {f.name for f in fields(known)}:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            values[key] = _value(path, section, key, value, getattr(known, key))
        chosen[section] = replace(known, **values)
    settings = replace(defaults, **chosen)
    try:
        settings.delivery.retry_policy()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings
