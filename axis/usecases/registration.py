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
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509

from axis.core import pki
from axis.errors import DataDirError, DuplicateConflict
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.base import Agency, Store


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
) -> Agency:
    """Register ``organ_id``: write its profile (pointing at ``hub_url``) and commit it.

    ``endpoint``: its push endpoint, if it runs one. ``key_kind``: "rsa" or "ec" for a key the
    development CA certifies; ``issuer`` that CA, loaded once when registering many.

    Raises:
        DuplicateConflict: the OrganId or the certificate is registered already.
        DataDirError: a malformed OrganId or endpoint, a profile already there, or an outside
            certificate the hub does not trust or that names another agency.
    """
    if endpoint is not None:
        check_endpoint(endpoint)
    if await store.get_agency(organ_id) is not None:
        raise DuplicateConflict(f"agency {organ_id} is already registered")
    cert = datadir.write_profile(
        data, organ_id, name, hub_url, cert_pem=cert_pem, key_kind=key_kind, issuer=issuer
    )
    agency = Agency(
        organ_id=organ_id,
        name=name,
        cert_pem=pki.cert_to_pem(cert),
        fingerprint=pki.fingerprint(cert),
        registered_at=datetime.now(UTC),
        endpoint=endpoint,
    )
    try:
        await store.add_agency(agency)
    except BaseException:
        # e.g. that certificate is registered to another agency already: the profile goes too.
        shutil.rmtree(data.profile(organ_id), ignore_errors=True)
        raise
    return agency
