"""The HTTPS push transport: the hub POSTs a package to an agency's endpoint.

The hub presents its own certificate as a TLS client. It checks the endpoint's certificate by
pinning: the only certificate it trusts for an agency's endpoint is the one that agency
registered, so a package never goes to a server that merely holds some certificate from a
trusted CA (every agency certificate names 127.0.0.1).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from axis.errors import PushFailed
from axis.store.base import Agency


class HttpsPushTransport:
    """:class:`axis.usecases.delivery.PushTransport` over HTTPS with client certificates."""

    def __init__(self, hub_cert: Path, hub_key: Path) -> None:
        self._hub_cert = hub_cert
        self._hub_key = hub_key
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._session: aiohttp.ClientSession | None = None

    def _context(self, agency: Agency) -> ssl.SSLContext:
        """A TLS context that trusts exactly the agency's registered certificate (cached)."""
        ctx = self._contexts.get(agency.fingerprint)
        if ctx is None:
            ctx = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cadata=agency.cert_pem.decode("ascii")
            )
            # The pinned leaf is the trust anchor itself; its names need not match the URL
            # (an outside-CA certificate often names no host at all).
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            ctx.check_hostname = False
            ctx.load_cert_chain(self._hub_cert, self._hub_key)
            self._contexts[agency.fingerprint] = ctx
        return ctx

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        if not recipient.endpoint:
            raise PushFailed(f"{recipient.organ_id} has no push endpoint")
        headers = {"Content-Type": "application/xml", "Axis-Package-Id": package_id}
        try:
            async with self._http().post(
                recipient.endpoint, data=body, headers=headers, ssl=self._context(recipient)
            ) as response:
                if not 200 <= response.status < 300:
                    text = (await response.text(errors="replace"))[:200]
                    raise PushFailed(f"the endpoint answered {response.status}: {text}")
        except aiohttp.ClientError as exc:
            raise PushFailed(f"{type(exc).__name__}: {exc}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise PushFailed(f"TLS or network error: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
