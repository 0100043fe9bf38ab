"""``DATA/axis.toml``: where the hub listens, its limits and its database.

Read with :mod:`tomllib`; unknown keys are an error so that a typo does not silently fall back
to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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

[signatures]
allow_sha1 = false              # accept RSA-SHA1 signatures of older agency software
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
    allow_sha1: bool = False

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
    ),
    "signatures": ("allow_sha1",),
}


_TYPE_NAMES = {bool: "true or false", int: "an integer", str: "a string"}


def load_settings(path: Path) -> Settings:
    """Settings from ``path``, defaults for what it does not say.

    Raises:
        ValueError: naming the file, for anything but valid UTF-8 TOML whose sections and keys
            are the ones above, each with a value of its default's type.
    """
    if not path.exists():
        return Settings()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid UTF-8 TOML: {exc}") from exc
    defaults = Settings()
    values: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in _SECTIONS:
            raise ValueError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ValueError(f"{path}: {section} must be a [{section}] table")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise ValueError(f"{path}: unknown key {key!r} in [{section}]")
            expected = type(getattr(defaults, key))
            # bool is an int in Python; a setting is exactly one or the other.
            if type(value) is not expected:
                raise ValueError(
                    f"{path}: [{section}] {key} must be {_TYPE_NAMES[expected]}, not {value!r}"
                )
            values[key] = value
    return Settings(**values)
