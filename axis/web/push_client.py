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

ANSWER_READ_BYTES = 4096  # of an answer that is not 2xx: read, never kept
REASON_CHARS = 120


def _printable(text: str) -> str:
    """A reason fit for ``last_error`` and the log: printable ASCII, short."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned[:REASON_CHARS]


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
            # Nothing of an answer is decompressed: a push endpoint is somebody else's server.
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def push(self, recipient: Agency, package_id: str, body: bytes) -> None:
        if not recipient.endpoint:
            raise PushFailed(f"{recipient.organ_id} has no push endpoint")
        if not recipient.endpoint.startswith("https://"):
            raise PushFailed(f"{recipient.organ_id}'s endpoint is not https")
        headers = {
            "Content-Type": "application/xml",
            "Axis-Package-Id": package_id,
            "Accept-Encoding": "identity",
        }
        try:
            # Never follow a redirect: it would take the hub past its pin and its https-only
            # rule to anything on its network (a 3xx is a failed push like any other).
            async with self._http().post(
                recipient.endpoint,
                data=body,
                headers=headers,
                ssl=self._context(recipient),
                allow_redirects=False,
            ) as response:
                if not 200 <= response.status < 300:
                    # The status and a short, printable reason; never the body itself, of
                    # which at most a few KiB are read (then the connection is dropped).
                    await response.content.read(ANSWER_READ_BYTES)
                    response.close()
                    reason = _printable(response.reason or "")
                    raise PushFailed(f"the endpoint answered {response.status} {reason}".rstrip())
        except aiohttp.ClientError as exc:
            raise PushFailed(_printable(f"{type(exc).__name__}: {exc}")) from exc
        except (ssl.SSLError, OSError) as exc:
            raise PushFailed(_printable(f"TLS or network error: {exc}")) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
