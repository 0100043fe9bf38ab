"""Registering an agency: its certificate, its node profile and its row in the store, all or
nothing.

The one way an agency comes into being, whoever asks: ``axis agency add``, the simulator
registering a country, the walk-through script, the tests. The development CA issues the
certificate, or an outside CA already did (``cert_pem``: the hub never sees that key); the
profile is written under ``DATA/agencies/ORGAN_ID``; then the store commits the agency with
its log entry. If the store refuses (the OrganId or the certificate is taken), the profile is
taken back, so nothing is left half-made.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509

from axis.core import pki
from axis.core.formats import ORGAN_ID_FORMS, is_organ_id
from axis.errors import DataDirError, DuplicateConflict
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.base import Agency, AgencyCode, Store


def check_endpoint(endpoint: str) -> None:
    """Raises DataDirError unless ``endpoint`` is an https URL the hub can push to."""
    try:
        url = urlsplit(endpoint)
        port = url.port
        host = url.hostname or ""
        host.encode("idna")
    except (ValueError, UnicodeError) as exc:
        raise DataDirError(f"the push endpoint {endpoint!r} is not a usable URL: {exc}") from exc
    if url.scheme != "https" or not host:
        raise DataDirError(f"the push endpoint must be an https:// URL with a host: {endpoint!r}")
    if port == 0:
        raise DataDirError(f"the push endpoint needs a real port: {endpoint!r}")


async def register(
    data: DataDir,
    store: Store,
    organ_id: str,
    name: str,
    *,
    hub_url: str,
    endpoint: str | None = None,
    cert_pem: bytes | None = None,
    key_kind: str = "rsa",
    issuer: tuple[pki.PrivateKey, x509.Certificate] | None = None,
    aliases: Sequence[str] = (),
    system_id: str | None = None,
) -> Agency:
    """Register ``organ_id``: write its profile (pointing at ``hub_url``) and commit it.

    ``endpoint``: its push endpoint, if it runs one. ``key_kind``: "rsa" or "ec" for a key the
    development CA certifies; ``issuer`` that CA, loaded once when registering many.
    ``aliases``: the other codes it holds (its 2016 code beside its Decision 20 one, say); an
    outside certificate may name any of its codes. ``system_id``: the system of the national
    axis's face that speaks for it too (it keeps its certificate and the node API).

    Raises:
        DuplicateConflict: a code or the certificate is registered already, or a code closed.
        DataDirError: a malformed OrganId, code or endpoint, a profile already there, or an
            outside certificate the hub does not trust or that names another agency.
    """
    if endpoint is not None:
        check_endpoint(endpoint)
    for code in aliases:
        check_code(code, "the code")
    if system_id is not None and await store.get_system(system_id) is None:
        raise DataDirError(f"no system {system_id!r}: axis system add {system_id} first")
    for code in (organ_id, *aliases):
        found = await store.find_code(code)
        if found is not None:
            raise DuplicateConflict(taken(found))
    cert = datadir.write_profile(
        data,
        organ_id,
        name,
        hub_url,
        cert_pem=cert_pem,
        key_kind=key_kind,
        issuer=issuer,
        aliases=aliases,
    )
    agency = Agency(
        organ_id=organ_id,
        name=name,
        cert_pem=pki.cert_to_pem(cert),
        fingerprint=pki.fingerprint(cert),
        registered_at=datetime.now(UTC),
        endpoint=endpoint,
        system_id=system_id,
    )
    try:
        await store.add_agency(agency, aliases)
    except BaseException:
        # e.g. that certificate is registered to another agency already: the profile goes too.
        shutil.rmtree(data.profile(organ_id), ignore_errors=True)
        raise
    return agency


def taken(record: AgencyCode) -> str:
    """Why a code cannot be given to an agency being registered."""
    if record.closed:
        return f"code {record.code} is closed ({record.successor} succeeds it)"
    if record.organ_id == record.code:
        return f"agency {record.code} is already registered"
    return f"code {record.code} is held by {record.organ_id}"


def check_code(code: str, what: str) -> None:
    """Raises DataDirError unless ``code`` is an OrganId of either generation."""
    if not is_organ_id(code):
        raise DataDirError(f"{what} {code!r} is not an OrganId ({ORGAN_ID_FORMS})")


async def add_code(store: Store, organ_id: str, code: str) -> None:
    """Let a registered agency hold one more code, as the national directory records a body's
    2016 code beside its Decision 20/2020 one.

    Raises:
        DataDirError: a malformed code, or no agency ``organ_id``.
        DuplicateConflict: another agency holds the code, or it is closed.
    """
    check_code(code, "the code")
    if not await store.add_code(organ_id, code):
        raise DataDirError(f"no agency {organ_id}")


async def close_code(store: Store, code: str, successor: str) -> AgencyCode:
    """Close ``code`` (as Decision 09/2025/QĐ-TTg closed the codes of merged provinces),
    naming the code that succeeds it: packages addressed to it are refused from then on,
    naming the successor, and it is never given out again. What was sent to it before stays.

    Raises:
        DataDirError: a malformed code or successor, or a code that succeeds itself.
        DuplicateConflict: the code is closed already, with another successor.
    """
    check_code(code, "the code")
    check_code(successor, "the successor")
    if successor == code:
        raise DataDirError(f"{code} cannot succeed itself")
    return await store.close_code(code, successor)
