"""How the node client's requests reach the hub: one small interface, swappable as httpx's
transports are.

:class:`HttpsTransport` is the real one: HTTPS with the agency's certificate, kept-alive
connections, a bounded number of them. :class:`MockTransport` answers from a function in this
process, for tests of the client's own behaviour (how it reads answers, retries and raises)
where no hub is needed. A transport only carries bytes: the client decides what an answer
means.
"""

from __future__ import annotations

import io
import re
import ssl
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Protocol

import aiohttp

from axis.errors import Unreachable

# Kept-alive TLS connections one agency holds to the hub; more requests than this wait for a
# free one. Without a bound an agency keeps as many as it ever had requests in flight: aiohttp
# reuses its oldest idle connection first, so under steady traffic none idles long enough to
# be closed, and each costs the hub (and the client) about 300 KiB (asyncio's TLS read buffer
# alone is 256 KiB).
MAX_CONNECTIONS = 2


@dataclass(frozen=True)
class Request:
    """One request to the hub: ``path`` with its query, e.g. ``/v1/inbox?limit=10``."""

    method: str
    path: str
    body: bytes | AsyncIterable[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """The hub's whole answer."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """Carries a request to the hub and brings its whole answer back."""

    async def send(self, request: Request) -> Response:
        """The answer, whatever its status.

        Raises:
            Unreachable: no answer came (refused, reset, timed out); the client may retry.
        """

    async def close(self) -> None:
        """Release connections."""


# Bodies beyond this go through a file object, which aiohttp writes 64 KiB at a time: a
# body written at once would grow the TLS layer's buffer (OpenSSL's memory BIO) to its size,
# and the buffer keeps that size for the connection's life.
LARGE_BODY = 64 * 1024
_PACKAGE_ID = re.compile(r"/[0-9a-f]{32}(?=/|$)")


def route_of(method: str, path: str) -> str:
    """A request's route, as the hub's router names it: ``POST /v1/packages/{id}/ack``."""
    return f"{method} {_PACKAGE_ID.sub('/{id}', path.split('?', 1)[0])}"


@dataclass
class Meter:
    """What the transports sharing it sent (``axis bench`` counts through one): requests by
    route, and the new connections they opened, each a TLS handshake."""

    requests: Counter[str] = field(default_factory=Counter)
    connections: int = 0

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def opened(session: object, context: SimpleNamespace, params: object) -> None:
            self.connections += 1

        config.on_connection_create_end.append(opened)
        return config


class HttpsTransport:
    """:class:`Transport` over HTTPS to ``base_url``, presenting the agency's certificate."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext,
        timeout_s: float = 60.0,
        max_connections: int = MAX_CONNECTIONS,
        meter: Meter | None = None,
    ) -> None:
        """``meter``: count the requests and new connections (shared by several)."""
        self.base_url = base_url.rstrip("/")
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.meter = meter
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=self.max_connections),
                timeout=self._timeout,
                trace_configs=[self.meter.trace_config()] if self.meter else None,
            )
        return self._session

    async def send(self, request: Request) -> Response:
        body: bytes | AsyncIterable[bytes] | io.BytesIO | None = request.body
        if isinstance(body, bytes) and len(body) > LARGE_BODY:
            body = io.BytesIO(body)  # written in pieces (aiohttp warns of big bytes at once)
        if self.meter is not None:
            self.meter.requests[route_of(request.method, request.path)] += 1
        try:
            async with self._http().request(
                request.method,
                self.base_url + request.path,
                data=body,
                headers=dict(request.headers),
            ) as answer:
                return Response(
                    answer.status, await answer.read(), answer.content_type, dict(answer.headers)
                )
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise Unreachable(f"cannot reach the hub at {self.base_url}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """:class:`Transport` that answers with ``handler(request)`` (a function or a coroutine
    function), and keeps every request it was sent in :attr:`requests`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, Response):
            return answer
        return await answer

    async def close(self) -> None:
        pass
