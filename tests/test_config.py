"""``DATA/axis.toml``: defaults, the shipped template, and refusals that name the file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from axis.core.signing import VerifierEngine
from axis.errors import ConfigError
from axis.host.config import (
    DEFAULT_TOML,
    DeliverySettings,
    HubSettings,
    Limits,
    Settings,
    SignatureSettings,
    load_settings,
)

SECTIONS = {f.name: getattr(Settings(), f.name) for f in dataclasses.fields(Settings)}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "axis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def template_keys() -> dict[str, tuple[str, Any]]:
    """Every key of DEFAULT_TOML: key -> (section, value)."""
    doc = tomllib.loads(DEFAULT_TOML)
    keys: dict[str, tuple[str, Any]] = {}
    for section, table in doc.items():
        assert isinstance(table, dict), section
        for key, value in table.items():
            assert key not in keys, f"{key} appears twice"
            keys[key] = (section, value)
    return keys


def test_defaults() -> None:
    s = Settings()
    assert s.hub.organ_id == "000.00.00.A00"
    assert (s.hub.host, s.hub.port) == ("127.0.0.1", 8443)
    assert (s.hub.admin_host, s.hub.admin_port) == ("127.0.0.1", 8444)  # operator API: loopback
    assert s.hub.database == ""
    assert s.limits.max_body_bytes == 50 * 1024 * 1024
    limits = s.limits
    assert (limits.max_recipients, limits.max_attachments, limits.max_xml_depth) == (200, 100, 64)
    assert s.limits.inbox_page == 100
    assert s.signatures.allow_sha1 is False  # SHA-1 is refused unless the operator opts in
    assert s.signatures.verifier is VerifierEngine.XMLSEC


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().hub.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().hub = HubSettings()  # type: ignore[misc]


def test_the_template_parses_to_exactly_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, DEFAULT_TOML)) == Settings()


def test_every_template_key_is_a_field_of_its_section_with_its_default_value() -> None:
    keys = template_keys()
    fields = {
        (section, f.name) for section, values in SECTIONS.items()
        for f in dataclasses.fields(values)
    }  # fmt: skip
    assert {(section, key) for key, (section, _) in keys.items()} == fields
    for key, (section, value) in keys.items():
        default = getattr(SECTIONS[section], key)
        assert value == default, f"[{section}] {key} = {value!r}, but the default is {default!r}"
        written = default.value if isinstance(default, VerifierEngine) else default
        assert type(value) is type(written), f"[{section}] {key}: {type(value).__name__}"
        assert Settings().lookup(key) == default


def test_the_template_sections() -> None:
    sections = {section for section, _ in template_keys().values()}
    assert sections == {"hub", "limits", "signatures", "delivery", "log", "vdxp"}


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "absent.toml") == Settings()


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()
    assert load_settings(write(tmp_path, "[hub]\n[limits]\n")) == Settings()


def test_given_keys_override_the_defaults(tmp_path: Path) -> None:
    text = (
        '[hub]\nport = 9443\ndatabase = "postgresql://axis@db/axis"\n'
        "[limits]\nmax_body_bytes = 200000\n"
        "[signatures]\nallow_sha1 = true\n"
    )
    assert load_settings(write(tmp_path, text)) == Settings(
        hub=HubSettings(port=9443, database="postgresql://axis@db/axis"),
        limits=Limits(max_body_bytes=200000),
        signatures=SignatureSettings(allow_sha1=True),
    )


def test_editing_one_value_of_the_template(tmp_path: Path) -> None:
    text = DEFAULT_TOML.replace("max_body_bytes = 52428800", "max_body_bytes = 200000")
    assert load_settings(write(tmp_path, text)) == Settings(limits=Limits(max_body_bytes=200000))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[hub]\nprot = 8443\n", ["prot", "[hub]"]),
        ("[limits]\nmax_body = 1\n", ["max_body", "[limits]"]),
        ("[signatures]\nallow_md5 = true\n", ["allow_md5"]),
    ],
    ids=["hub", "limits", "signatures"],
)
def test_an_unknown_key_is_refused_naming_the_file(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="unknown key") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("text", "section"),
    [
        ("[server]\nport = 1\n", "server"),
        ("[Hub]\nport = 1\n", "Hub"),
        ("port = 8443\n", "port"),  # a key outside any section
        ("[hub.tls]\ncert = 'x'\n", "hub"),  # a nested table is not a setting
    ],
    ids=["unknown", "wrong-case", "top-level-key", "nested"],
)
def test_an_unknown_section_is_refused_naming_the_file(
    tmp_path: Path, text: str, section: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    assert section in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "[hub\nport = 1\n",
        "[hub]\nport = \n",
        "[hub]\nport = 1\nport = 2\n",
        "[hub]\nhost = 127.0.0.1\n",
        "[hub]\n[hub]\n",
    ],
    ids=["bracket", "no-value", "repeated-key", "unquoted", "repeated-table"],
)
def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, tomllib.TOMLDecodeError)


def test_with_overrides_replaces_the_given_values() -> None:
    base = Settings()
    changed = base.with_overrides(port=0, admin_port=0, allow_sha1=True, database="x.db")
    assert changed == Settings(
        hub=HubSettings(port=0, admin_port=0, database="x.db"),
        signatures=SignatureSettings(allow_sha1=True),
    )
    assert base == Settings()  # a copy: the original is untouched


def test_with_overrides_ignores_none() -> None:
    base = Settings(hub=HubSettings(port=9000, host="0.0.0.0"))
    assert base.with_overrides(port=None, host=None, allow_sha1=None) == base
    assert base.with_overrides() == base
    assert base.with_overrides(port=None, admin_port=1) == Settings(
        hub=HubSettings(port=9000, host="0.0.0.0", admin_port=1)
    )


def test_with_overrides_keeps_falsy_values_that_are_not_none() -> None:
    base = Settings(
        hub=HubSettings(database="axis.db", port=8443),
        signatures=SignatureSettings(allow_sha1=True),
    )
    assert base.with_overrides(allow_sha1=False, database="", port=0) == Settings(
        hub=HubSettings(database="", port=0)
    )


def test_with_overrides_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError):
        Settings().with_overrides(prot=1)  # type: ignore[call-arg]


# -- refusals that name the file ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['[signatures]\nallow_sha1 = "false"\n', '[hub]\nport = "8443"\n'],
    ids=["allow_sha1-string", "port-string"],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "axis.toml"
    path.write_bytes("[hub]\n# Trục liên thông\nport = 1\n".encode("utf-16"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_a_key_in_the_wrong_section_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nport = 8443\n")
    with pytest.raises(ConfigError, match=r"unknown key 'port' in \[limits\]"):
        load_settings(path)


def test_a_bool_is_not_an_int(tmp_path: Path) -> None:
    path = write(tmp_path, "[hub]\nport = true\n")
    with pytest.raises(ConfigError, match="port must be an integer"):
        load_settings(path)


def test_an_integer_may_stand_for_a_number_of_seconds(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nretry_base_s = 1\nretry_cap_s = 8\n")
    settings = load_settings(path)
    assert settings.delivery.retry_base_s == 1.0 and isinstance(
        settings.delivery.retry_base_s, float
    )
    assert settings.delivery.retry_policy().ceiling(5) == 8.0


def test_the_verifier_is_one_of_the_engines(tmp_path: Path) -> None:
    chosen = load_settings(write(tmp_path, '[signatures]\nverifier = "signxml"\n'))
    assert chosen.signatures.verifier is VerifierEngine.SIGNXML
    path = write(tmp_path, '[signatures]\nverifier = "hand-rolled"\n')
    with pytest.raises(ConfigError, match="verifier must be one of xmlsec, signxml") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["[delivery]\nretry_base_s = 0\n", "[delivery]\nretry_cap_s = 1.0\n",
     "[delivery]\nretry_max_attempts = 0\n"],
    ids=["no-base", "cap-below-base", "no-attempts"],
)  # fmt: skip
def test_retry_values_that_make_no_policy_are_refused_naming_the_file(
    tmp_path: Path, text: str
) -> None:
    """They were read without a word, and the push worker failed on them at start."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"\[delivery\]: retry policy needs") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_lookup_finds_a_key_in_whichever_section_holds_it() -> None:
    settings = Settings(delivery=DeliverySettings(lease_s=5.0))
    assert settings.lookup("lease_s") == 5.0
    assert settings.lookup("port") == 8443
    with pytest.raises(KeyError):
        settings.lookup("prot")
