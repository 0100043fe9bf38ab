"""``DATA/axis.toml``: where the hub listens, its limits and its database.

Read with :mod:`tomllib`; unknown keys are an error so that a typo does not silently fall back
to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from axis.core.retry import RetryPolicy
from axis.errors import ConfigError

VERIFIERS = ("xmlsec", "signxml")  # axis.core.signing.Verifier's engines

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
inbox_page = 100                # the largest page /v1/inbox returns
rate_per_s = 50.0               # requests a second one agency may make on average (0 = no limit)
rate_burst = 200                # … and at once; beyond: 429 rate-limited with Retry-After
shutdown_timeout_s = 30.0       # on SIGTERM, how long requests in hand may take to finish
idle_timeout_s = 60.0           # a connection that sends no (complete) request for this long
body_idle_timeout_s = 30.0      # a body that stops arriving for this long is cut off (400) …
body_timeout_s = 900.0          # … and so is one that takes longer than this in all

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
"""


@dataclass(frozen=True)
class Settings:
    """Everything ``axis serve`` needs to know that is not a key or a certificate."""

    organ_id: str = "000.00.00.A00"
    host: str = "127.0.0.1"
    port: int = 8443
    admin_host: str = "127.0.0.1"
    admin_port: int = 8444
    database: str = ""
    max_body_bytes: int = 50 * 1024 * 1024
    max_recipients: int = 200
    max_attachments: int = 100
    max_xml_depth: int = 64
    max_concurrent_uploads: int = 8
    inbox_page: int = 100
    rate_per_s: float = 50.0
    rate_burst: int = 200
    shutdown_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 900.0
    allow_sha1: bool = False
    verifier: str = "xmlsec"
    push_workers: int = 4
    push_timeout_s: float = 30.0
    lease_s: float = 120.0
    retry_base_s: float = 2.0
    retry_factor: float = 2.0
    retry_cap_s: float = 1800.0
    retry_max_attempts: int = 100
    retry_max_age_s: float = 86400.0
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0

    def retry_policy(self) -> RetryPolicy:
        """The push retry policy these settings describe."""
        return RetryPolicy(
            base_s=self.retry_base_s,
            factor=self.retry_factor,
            cap_s=self.retry_cap_s,
            max_attempts=self.retry_max_attempts,
            max_age_s=self.retry_max_age_s,
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# Which keys each section of axis.toml holds (the defaults of Settings give their types).
_SECTIONS: dict[str, tuple[str, ...]] = {
    "hub": ("organ_id", "host", "port", "admin_host", "admin_port", "database"),
    "limits": (
        "max_body_bytes",
        "max_recipients",
        "max_attachments",
        "max_xml_depth",
        "max_concurrent_uploads",
        "inbox_page",
        "rate_per_s",
        "rate_burst",
        "shutdown_timeout_s",
        "idle_timeout_s",
        "body_idle_timeout_s",
        "body_timeout_s",
    ),
    "signatures": ("allow_sha1", "verifier"),
    "delivery": (
        "push_workers",
        "push_timeout_s",
        "lease_s",
        "retry_base_s",
        "retry_factor",
        "retry_cap_s",
        "retry_max_attempts",
        "retry_max_age_s",
    ),
    "log": ("checkpoint_every", "checkpoint_interval_s"),
}


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def load_settings(path: Path) -> Settings:
    """Settings from ``path``, defaults for what it does not say.

    Raises:
        ConfigError: naming the file, for anything but valid UTF-8 TOML whose sections and keys
            are the ones above, each with a value of its default's type.
    """
    if not path.exists():
        return Settings()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid UTF-8 TOML: {exc}") from exc
    defaults = Settings()
    values: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a [{section}] table")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            expected = type(getattr(defaults, key))
            if expected is float and type(value) is int:
                value = float(value)  # "retry_base_s = 2" means 2.0
            # bool is an int in Python; a setting is exactly one or the other.
            if type(value) is not expected:
                raise ConfigError(
                    f"{path}: [{section}] {key} must be {_TYPE_NAMES[expected]}, not {value!r}"
                )
            values[key] = value
    if values.get("verifier", defaults.verifier) not in VERIFIERS:
        raise ConfigError(
            f"{path}: [signatures] verifier must be one of {', '.join(VERIFIERS)},"
            f" not {values['verifier']!r}"
        )
    return Settings(**values)
